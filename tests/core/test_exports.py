"""Every public name is exported, and ``__all__`` lists nothing that does not exist."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import optillm_core
import optillm_core.testing
import optillm_core.toolkit

PACKAGES = [
    "optillm_core",
    "optillm_router",
    "optillm_moa",
    "optillm_mcts",
    "optillm_mars",
    "optillm_sampling",
    "optillm_server",
    "optillm_cli",
]


def public_names(module: ModuleType) -> set[str]:
    """Public names defined in the module itself or in one of its private submodules."""

    def defined_here(value: object) -> bool:
        origin = getattr(value, "__module__", None)
        return origin == module.__name__ or str(origin).startswith(module.__name__ + "._")

    return {name for name, value in vars(module).items() if not name.startswith("_") and defined_here(value)}


@pytest.mark.parametrize("module", [optillm_core, optillm_core.testing, optillm_core.toolkit])
def test_all_is_complete_and_sorted(module: ModuleType) -> None:
    exported = set(module.__all__)
    assert public_names(module) <= exported
    assert list(module.__all__) == sorted(module.__all__, key=lambda n: (not n.isupper(), n))
    for name in exported:
        assert hasattr(module, name), name


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_declares_an_all_that_resolves(package: str) -> None:
    module = importlib.import_module(package)
    assert isinstance(module.__all__, tuple)
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.{name}"
    for info in pkgutil.iter_modules(module.__path__):
        assert info.name.startswith("_") or info.name in {"testing", "toolkit"}, (
            f"{package}.{info.name} should be private"
        )


def all_modules() -> list[str]:
    """Every module of every package, private ones included."""
    names: list[str] = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        names += [
            f"{package}.{info.name}" for info in pkgutil.walk_packages(module.__path__) if info.name != "__main__"
        ]
    return names


@pytest.mark.parametrize("name", all_modules())
def test_every_module_all_names_what_it_holds(name: str) -> None:
    """Each module's ``__all__`` is a tuple of distinct names it really has (its own public surface)."""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, tuple), f"{name} has no __all__ tuple"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    for item in exported:
        assert hasattr(module, item), f"{name}.{item}"


CONTRACTS = {
    # strategies and runs
    "Optimizer", "OptimizerConfig", "RunContext", "Outcome", "Solution", "OptimizerMetadata", "CallRole",
    "CALLER_SETTINGS_BY_ROLE", "FINAL_ONLY_EXTRA", "UnsupportedPolicy", "Conversation",
    # clients, messages, settings, responses, tools
    "ModelClient", "WrapperClient", "collect_stream", "merge_completions", "Message", "Prompt", "Role",
    "GenerationSettings", "Completion", "Completed", "FinishReason", "OutputTextDelta", "ReasoningDelta",
    "ResponseEvent", "TokenUsage", "ToolCallDelta", "ToolCall", "ToolChoice", "ToolDefinition",
    # events
    "AnswerDelta", "CallFinished", "EventChannel", "EventHandler", "OptimizerEvent", "PhaseStarted",
    "RunCompleted", "RunFailed", "RunStarted",
    # errors
    "OptillmError", "ClientError", "AuthenticationError", "BadRequestError", "RateLimitError", "ProviderTimeout",
    "ProviderUnavailable", "ProtocolError", "InvalidConfiguration", "UnsupportedSetting", "NoSolutions",
    "ParsingError", "AnswerExtractionError", "Timeout", "BudgetExhausted", "OptimizerError", "error_for_status",
    "map_client_errors", "redact",
    # budgets, profiles, registry, the model-request guard, the logger
    "Budget", "MeteredClient", "RunUsage", "charge_call", "run_time_left", "ModelProfile", "FittedSettings",
    "MaxTokensField", "ThinkingStyle", "ENTRY_POINT_GROUP", "OptimizerInfo", "OptimizerRegistry", "PluginFailure",
    "default_registry", "ModelRequestsBlocked", "allow_model_requests", "check_allow_model_requests",
    "set_model_requests_allowed", "logger", "__version__",
}  # fmt: skip


def test_the_top_level_holds_the_contracts_only() -> None:
    assert set(optillm_core.__all__) == CONTRACTS
    toolkit = set(optillm_core.toolkit.__all__)
    assert not toolkit & CONTRACTS
