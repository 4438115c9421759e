"""The ``optillm`` logger, with structlog imported when something is first logged (not at import: it is heavy)."""

from __future__ import annotations as _annotations

from typing import Any

__all__ = ("log",)


class _LazyLogger:
    """Forwards ``debug``, ``info``, ``warning``… to ``structlog.get_logger("optillm")``, created on first use."""

    __slots__ = ("_logger",)

    def __init__(self) -> None:
        self._logger: Any = None

    def __getattr__(self, method: str) -> Any:
        if self._logger is None:
            import structlog

            self._logger = structlog.get_logger("optillm")
        return getattr(self._logger, method)


log = _LazyLogger()
