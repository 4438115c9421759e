"""Every public name is exported, and ``__all__`` lists nothing that does not exist."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import optillm_core
import optillm_core.testing

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


@pytest.mark.parametrize("module", [optillm_core, optillm_core.testing])
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
        assert info.name.startswith("_") or info.name in {"testing"}, f"{package}.{info.name} should be private"
