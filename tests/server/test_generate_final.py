"""The core hook the proxy streams from: ``RunContext.generate_final`` and its ``AnswerDelta`` events."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from optillm_core import (
    AnswerDelta,
    Completion,
    EventChannel,
    GenerationSettings,
    OptimizerEvent,
    Prompt,
    ResponseEvent,
)
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


class _CountingStreams(ScriptedClient):
    """Counts the calls made as streams (a plain request is collected from a stream here, so not counted)."""

    __test__ = False
    streams = 0
    plain = 0

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        self.plain += 1
        self.streams -= 1
        return await super().request(prompt, settings)

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        self.streams += 1
        async for event in super().request_stream(prompt, settings):
            yield event


async def test_a_run_nobody_watches_makes_its_final_call_as_a_plain_request() -> None:
    unwatched = _CountingStreams(["draft text", "the final answer"])
    solution = await EchoStrategy().optimize("Q", unwatched)
    assert solution.answer == "the final answer"
    assert (unwatched.plain, unwatched.streams) == (2, 0)

    watched = _CountingStreams(["draft text", "the final answer"])
    await EchoStrategy().optimize("Q", watched, events=lambda event: None)
    assert (watched.plain, watched.streams) == (1, 1)
