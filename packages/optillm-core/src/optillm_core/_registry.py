"""The ``optillm.optimizers`` entry-point registry: installed strategies, found by name."""

from __future__ import annotations as _annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._config import CallRole
from ._errors import InvalidConfiguration, OptimizerError
from ._log import log
from ._optimizer import Optimizer

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ("ENTRY_POINT_GROUP", "OptimizerInfo", "OptimizerRegistry", "PluginFailure", "default_registry")

ENTRY_POINT_GROUP = "optillm.optimizers"


@dataclass(frozen=True)
class OptimizerInfo:
    """An installed strategy: its name, the distribution that provides it, and its class."""

    name: str
    package: str
    optimizer: type[Optimizer[Any]]

    @property
    def description(self) -> str:
        return self.optimizer.description

    @property
    def phases(self) -> Mapping[str, CallRole]:
        """Each phase of the strategy and the role of its calls (which caller settings reach it)."""
        return self.optimizer.phases

    def config_fields(self) -> dict[str, Any]:
        """Each config field with its default (``None`` for required fields)."""
        fields = self.optimizer.config_type.model_fields
        return {
            name: (None if f.is_required() else f.get_default(call_default_factory=True)) for name, f in fields.items()
        }


@dataclass(frozen=True)
class PluginFailure:
    """A strategy entry point that could not be loaded."""

    name: str
    package: str
    error: str


@dataclass
class OptimizerRegistry:
    """Strategies registered under :data:`ENTRY_POINT_GROUP`, loaded once, lazily.

    A plugin that fails to import or is not an :class:`Optimizer` subclass is logged and listed
    in :attr:`failures`; the others stay usable.
    """

    source: Iterable[EntryPoint] | None = None
    _loaded: dict[str, OptimizerInfo] | None = field(default=None, init=False, repr=False)
    _failures: list[PluginFailure] = field(default_factory=list, init=False, repr=False)

    def _scan(self) -> dict[str, OptimizerInfo]:
        if self._loaded is not None:
            return self._loaded
        loaded: dict[str, OptimizerInfo] = {}
        if self.source is not None:
            points = self.source
        else:
            from importlib.metadata import entry_points  # not at import: it costs more than the rest of core

            points = entry_points(group=ENTRY_POINT_GROUP)
        for point in points:
            package = point.dist.name if point.dist is not None else "unknown"
            if point.name in loaded:
                log.warning("duplicate optimizer name ignored", name=point.name, package=package)
                continue
            try:
                target = point.load()
            except Exception as exc:
                self._fail(point.name, package, f"{type(exc).__name__}: {exc}")
                continue
            if not (isinstance(target, type) and issubclass(target, Optimizer)):
                self._fail(point.name, package, f"{point.value} is not an Optimizer subclass")
                continue
            loaded[point.name] = OptimizerInfo(name=point.name, package=package, optimizer=target)
        self._loaded = loaded
        return loaded

    def _fail(self, name: str, package: str, error: str) -> None:
        log.warning("optimizer plugin failed to load", name=name, package=package, error=error)
        self._failures.append(PluginFailure(name=name, package=package, error=error))

    @property
    def failures(self) -> list[PluginFailure]:
        self._scan()
        return list(self._failures)

    def names(self) -> list[str]:
        return sorted(self._scan())

    def infos(self) -> list[OptimizerInfo]:
        loaded = self._scan()
        return [loaded[name] for name in sorted(loaded)]

    def register(self, optimizer: type[Optimizer[Any]], *, package: str = "local") -> None:
        """Add a strategy by hand (for applications and tests)."""
        self._scan()[optimizer.name] = OptimizerInfo(name=optimizer.name, package=package, optimizer=optimizer)

    def get(self, name: str) -> OptimizerInfo:
        loaded = self._scan()
        if name in loaded:
            return loaded[name]
        failed = next((f for f in self._failures if f.name == name), None)
        if failed is not None:
            raise OptimizerError(f"strategy '{name}' from {failed.package} failed to load: {failed.error}")
        installed = ", ".join(sorted(loaded)) or "none"
        raise InvalidConfiguration(f"unknown strategy '{name}' (installed: {installed})")

    def create(self, name: str, options: Mapping[str, Any] | None = None) -> Optimizer[Any]:
        """An optimizer by name, its config validated from ``options``."""
        return self.get(name).optimizer.from_options(options)


_default: OptimizerRegistry | None = None


def default_registry() -> OptimizerRegistry:
    """The process-wide registry of installed strategies."""
    global _default
    if _default is None:
        _default = OptimizerRegistry()
    return _default
