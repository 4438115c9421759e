"""optillm-core: the contracts every optillm optimizer and provider builds on.

The strategy toolkit (sampler, approaches, rating, voting, the absorb policy) is
:mod:`optillm_core.toolkit`; test doubles, model profiles and clocks are :mod:`optillm_core.testing`.
"""

from __future__ import annotations as _annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._budget import Budget, MeteredClient, RunUsage, charge_call, run_time_left
from ._client import ModelClient, WrapperClient, collect_stream, merge_completions
from ._config import CALLER_SETTINGS_BY_ROLE, FINAL_ONLY_EXTRA, CallRole, OptimizerConfig, UnsupportedPolicy
from ._context import RunContext
from ._conversation import Conversation
from ._errors import (
    AnswerExtractionError,
    AuthenticationError,
    BadRequestError,
    BudgetExhausted,
    ClientError,
    InvalidConfiguration,
    NoSolutions,
    OptillmError,
    OptimizerError,
    ParsingError,
    ProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitError,
    Timeout,
    UnsupportedSetting,
    error_for_status,
    map_client_errors,
    redact,
)
from ._events import (
    AnswerDelta,
    CallFinished,
    EventChannel,
    EventHandler,
    OptimizerEvent,
    PhaseStarted,
    RunCompleted,
    RunFailed,
    RunStarted,
)
from ._guard import (
    ModelRequestsBlocked,
    allow_model_requests,
    check_allow_model_requests,
    set_model_requests_allowed,
)
from ._log import logger
from ._messages import GenerationSettings, Message, Prompt, Role
from ._optimizer import Optimizer
from ._outcome import OptimizerMetadata, Outcome, Solution
from ._profiles import FittedSettings, MaxTokensField, ModelProfile, ThinkingStyle
from ._registry import ENTRY_POINT_GROUP, OptimizerInfo, OptimizerRegistry, PluginFailure, default_registry
from ._responses import (
    Completed,
    Completion,
    FinishReason,
    OutputTextDelta,
    ReasoningDelta,
    ResponseEvent,
    TokenUsage,
    ToolCallDelta,
)
from ._tools import ToolCall, ToolChoice, ToolDefinition

if _TYPE_CHECKING:
    __version__: str


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed distribution's metadata when first asked for.

    importlib.metadata costs more to import than the rest of the package, and few callers ask.
    """
    if name == "__version__":
        from importlib.metadata import version

        value = version("optillm-core")
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = (
    "CALLER_SETTINGS_BY_ROLE",
    "ENTRY_POINT_GROUP",
    "FINAL_ONLY_EXTRA",
    "AnswerDelta",
    "AnswerExtractionError",
    "AuthenticationError",
    "BadRequestError",
    "Budget",
    "BudgetExhausted",
    "CallFinished",
    "CallRole",
    "ClientError",
    "Completed",
    "Completion",
    "Conversation",
    "EventChannel",
    "EventHandler",
    "FinishReason",
    "FittedSettings",
    "GenerationSettings",
    "InvalidConfiguration",
    "MaxTokensField",
    "Message",
    "MeteredClient",
    "ModelClient",
    "ModelProfile",
    "ModelRequestsBlocked",
    "NoSolutions",
    "OptillmError",
    "Optimizer",
    "OptimizerConfig",
    "OptimizerError",
    "OptimizerEvent",
    "OptimizerInfo",
    "OptimizerMetadata",
    "OptimizerRegistry",
    "Outcome",
    "OutputTextDelta",
    "ParsingError",
    "PhaseStarted",
    "PluginFailure",
    "Prompt",
    "ProtocolError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimitError",
    "ReasoningDelta",
    "ResponseEvent",
    "Role",
    "RunCompleted",
    "RunContext",
    "RunFailed",
    "RunStarted",
    "RunUsage",
    "Solution",
    "ThinkingStyle",
    "Timeout",
    "TokenUsage",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolDefinition",
    "UnsupportedPolicy",
    "UnsupportedSetting",
    "WrapperClient",
    "__version__",
    "allow_model_requests",
    "charge_call",
    "check_allow_model_requests",
    "collect_stream",
    "default_registry",
    "error_for_status",
    "logger",
    "map_client_errors",
    "merge_completions",
    "redact",
    "run_time_left",
    "set_model_requests_allowed",
)
