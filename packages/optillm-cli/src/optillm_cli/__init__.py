"""optillm-cli: the ``optillm`` command (``run``, ``strategies``, ``serve``)."""

from __future__ import annotations as _annotations

from ._app import build_parser, main, run_cli
from ._codes import ExitCode

__all__ = ("ExitCode", "build_parser", "main", "run_cli")
