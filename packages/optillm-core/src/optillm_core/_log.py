"""The ``optillm`` logger: structlog's, imported when something is first logged, and bound once per configuration.

structlog's module-level logger is a lazy proxy that, unless the application configured
``cache_logger_on_first_use``, assembles a new bound logger (and, by default, a new print logger)
on every call: several microseconds for each debug event a model call emits, even when the
application filters debug out. This logger binds once and binds again only when what a bound
logger holds changes: structlog's processors list (the object: ``structlog.testing.capture_logs``
edits that list in place, which a bound logger sees), wrapper class (the level filter), logger
factory or context class, or ``sys.stdout`` / ``sys.stderr`` (which a print logger captures when
it is made). Libraries never configure structlog; this only reads its configuration.
"""

from __future__ import annotations as _annotations

import sys
from typing import Any

__all__ = ("log", "logger")


class _Logger:
    """``debug``, ``info``, ``warning``, ``error``, ``exception`` (and any other method) of the ``optillm`` logger."""

    __slots__ = ("_bound", "_get_config", "_key", "_proxy")

    def __init__(self) -> None:
        self._proxy: Any = None
        self._get_config: Any = None
        self._bound: Any = None
        self._key: tuple[object, ...] = ()

    def _current(self) -> Any:
        if self._proxy is None:
            import structlog

            self._proxy = structlog.get_logger("optillm")
            self._get_config = structlog.get_config
        config = self._get_config()
        key = self._key
        # Compared one by one, by identity: this runs on every event, and a generator costs more.
        if (
            not key
            or key[0] is not config["processors"]
            or key[1] is not config["wrapper_class"]
            or key[2] is not config["logger_factory"]
            or key[3] is not config["context_class"]
            or key[4] is not sys.stdout
            or key[5] is not sys.stderr
        ):
            self._key = (
                config["processors"],
                config["wrapper_class"],
                config["logger_factory"],
                config["context_class"],
                sys.stdout,
                sys.stderr,
            )
            self._bound = self._proxy.bind()
        return self._bound

    def debug(self, event: str, **fields: Any) -> None:
        self._current().debug(event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._current().info(event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._current().warning(event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._current().error(event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._current().exception(event, **fields)

    def __getattr__(self, method: str) -> Any:
        return getattr(self._current(), method)

    def __repr__(self) -> str:
        return "<optillm logger>"


logger = _Logger()
"""The ``optillm`` structlog logger, for strategy packages and other libraries built on core."""
log = logger
