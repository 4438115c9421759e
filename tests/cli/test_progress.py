"""Events on stderr: JSON lines with --events, a progress line on a terminal only."""

from __future__ import annotations

import io
import json

from optillm_cli._progress import EventLines, Progress, is_terminal
from optillm_core import CallFinished, PhaseStarted, RunStarted


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_event_lines_are_one_json_object_each() -> None:
    stream = io.StringIO()
    lines = EventLines(stream)
    lines(PhaseStarted(optimizer="fanout", phase="sampling"))
    lines(CallFinished(optimizer="fanout", llm_calls=1, prompt_tokens=5, completion_tokens=7))
    decoded = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [d["kind"] for d in decoded] == ["PhaseStarted", "CallFinished"]
    assert decoded[0]["phase"] == "sampling"
    assert decoded[1]["completion_tokens"] == 7


def test_progress_shows_phase_calls_and_tokens_then_clears() -> None:
    stream = FakeTerminal()
    progress = Progress(stream, "fanout")
    progress(RunStarted(optimizer="fanout", query="q"))
    assert stream.getvalue() == ""
    progress(PhaseStarted(optimizer="fanout", phase="sampling"))
    progress(CallFinished(optimizer="fanout", llm_calls=2, prompt_tokens=1000, completion_tokens=234))
    assert progress.line() == "fanout: sampling · 2 calls · 1,234 tokens"
    assert stream.getvalue().endswith(progress.line())
    progress.finish()
    assert stream.getvalue().endswith("\r\x1b[2K")
    assert "\n" not in stream.getvalue()


def test_finish_writes_nothing_when_nothing_was_shown() -> None:
    stream = FakeTerminal()
    Progress(stream, "fanout").finish()
    assert stream.getvalue() == ""


def test_terminal_detection() -> None:
    assert is_terminal(FakeTerminal())
    assert not is_terminal(io.StringIO())
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed)
