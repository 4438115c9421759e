"""The core hook the proxy streams from: ``RunContext.generate_final`` and its ``AnswerDelta`` events."""

from __future__ import annotations

import pytest

from optillm_core import AnswerDelta, EventChannel, GenerationSettings, OptimizerEvent
from optillm_core.testing import ScriptedClient

from .support import EchoStrategy

pytestmark = pytest.mark.anyio


async def test_the_final_generation_is_sent_piece_by_piece_and_counted() -> None:
    client = ScriptedClient(["draft text", "the final answer"])
    events: list[OptimizerEvent] = []
    solution = await EchoStrategy().optimize("Q", client, events=events.append)
    deltas = [e.delta for e in events if isinstance(e, AnswerDelta)]
    assert deltas == ["the ", "final ", "answer"]
    assert all(e.optimizer == "echo" for e in events if isinstance(e, AnswerDelta))
    assert solution.answer == "the final answer"
    assert solution.metadata.llm_calls == 2
    assert solution.usage.output_tokens == 5


async def test_settings_reach_the_streamed_call_and_a_channel_receives_the_deltas() -> None:
    client = ScriptedClient(["d", "a b"])
    channel = EventChannel()
    await EchoStrategy().optimize("Q", client, settings=GenerationSettings(max_tokens=5), events=channel)
    assert [e.delta for e in channel.drain() if isinstance(e, AnswerDelta)] == ["a ", "b"]
    assert client.settings_seen[-1].max_tokens == 5
