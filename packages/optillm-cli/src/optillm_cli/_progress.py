"""Where a run's events go on stderr: JSON lines (``--events``) or a live progress line on a terminal."""

from __future__ import annotations as _annotations

import json
import shutil
from typing import TextIO

from optillm_core import CallFinished, OptimizerEvent, PhaseStarted

__all__ = ("EventLines", "Progress", "is_terminal")

_CLEAR = "\r\x1b[2K"


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class EventLines:
    """Writes each event as one JSON line."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, event: OptimizerEvent) -> None:
        self._stream.write(json.dumps(event.to_json_dict(), ensure_ascii=False) + "\n")
        self._stream.flush()

    def finish(self) -> None:
        """Nothing to tidy: every line is complete."""


class Progress:
    """One line, rewritten in place: strategy, current phase, calls done and tokens so far."""

    def __init__(self, stream: TextIO, strategy: str) -> None:
        self._stream = stream
        self._strategy = strategy
        self.phase = "starting"
        self.calls = 0
        self.tokens = 0
        self._shown = False

    def line(self) -> str:
        calls = "call" if self.calls == 1 else "calls"
        return f"{self._strategy}: {self.phase} · {self.calls} {calls} · {self.tokens:,} tokens"

    def __call__(self, event: OptimizerEvent) -> None:
        if isinstance(event, PhaseStarted):
            self.phase = event.label
        elif isinstance(event, CallFinished):
            self.calls = event.llm_calls
            self.tokens = event.prompt_tokens + event.completion_tokens
        else:
            return
        width = shutil.get_terminal_size().columns - 1
        self._stream.write(_CLEAR + self.line()[:width])
        self._stream.flush()
        self._shown = True

    def finish(self) -> None:
        """Erase the line, so the answer and any error start on a clean line."""
        if self._shown:
            self._stream.write(_CLEAR)
            self._stream.flush()
            self._shown = False
