"""The ``optillm`` logger (core's: structlog's, bound once per structlog configuration)."""

from __future__ import annotations as _annotations

from optillm_core import logger as log

__all__ = ("log",)
