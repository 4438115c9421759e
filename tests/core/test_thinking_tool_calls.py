"""Tool-call pieces in a stream of ``<think>`` text: they end their own choice's text only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from optillm_core import Completed, OutputTextDelta, ReasoningDelta, ResponseEvent, ToolCallDelta, collect_stream
from optillm_core.toolkit import split_thinking_stream

pytestmark = pytest.mark.anyio


async def _events(*events: ResponseEvent) -> AsyncIterator[ResponseEvent]:
    for event in events:
        yield event


async def test_a_choices_tool_call_leaves_the_other_choices_thinking_alone() -> None:
    stream = _events(
        OutputTextDelta(delta="let me see", index=1),  # choice 1 thinks (its template opened the tag)
        OutputTextDelta(delta="</think>\n\nUse the tool.", index=0),
        ToolCallDelta(index=0, call=0, id="c", name="f", arguments="{}"),
        OutputTextDelta(delta=" more</think>\n\nIt is 42.", index=1),
        Completed(finish_reasons=("tool_calls", "stop")),
    )
    events = [e async for e in split_thinking_stream(stream, expect_close=True)]
    completion = await collect_stream(_events(*events), 2)
    assert completion.texts == ("Use the tool.", "It is 42.")
    assert completion.thinking == ("", "let me see more")
    assert completion.calls_of(0)[0].name == "f"
    thoughts = [e.delta for e in events if isinstance(e, ReasoningDelta)]
    assert "".join(thoughts) == "let me see more"
