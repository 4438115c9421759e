"""Options shared by every section."""

from __future__ import annotations as _annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ("Options",)


@dataclass(frozen=True)
class Options:
    """``smoke`` runs tiny sizes (for the harness's own test); ``flags`` are echoed in each command."""

    smoke: bool = False
    out: Path = Path("benchmarks/results")
    flags: tuple[str, ...] = field(default_factory=tuple)
    questions: int | None = None
    real_questions: int | None = None
    real_seconds: float | None = None

    def command(self, section: str) -> str:
        return shlex.join(["uv", "run", "python", "-m", "benchmarks", section, *self.flags])
