"""``stream: true`` for strategy runs: first bytes at once, progress comments, live answer, usage, [DONE]."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from optillm_core import (
    GenerationSettings,
    Optimizer,
    OptimizerConfig,
    OptimizerRegistry,
    Outcome,
    Prompt,
    RateLimitError,
    RunContext,
)
from optillm_core.testing import FunctionClient, count_tokens

from .support import last_user, proxy, replying


class GroupedStrategy(Optimizer[OptimizerConfig]):
    """Two calls in a bare anyio task group, so that a failure leaves the run as an exception group."""

    name = "grouped"
    description = "test strategy: concurrent calls in a plain task group"

    async def run(self, ctx: RunContext[OptimizerConfig]) -> Outcome:
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(ctx.generate, ctx.prompt(ctx.query))
        return Outcome(answer="unreachable")


def grouped_registry() -> OptimizerRegistry:
    registry = OptimizerRegistry(source=[])
    registry.register(GroupedStrategy)
    return registry


pytestmark = pytest.mark.anyio


async def test_stream_carries_the_answer_live_and_closes_with_usage() -> None:
    client = FunctionClient(replying)
    async with proxy(client) as sdk:
        stream = await sdk.chat.completions.create(
            model="echo-m",
            messages=[{"role": "user", "content": "Q"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    answer = "reply to final: reply to draft: Q"
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(content) == answer
    assert len(content) == len(answer.split())  # one piece per generated word: streamed, not sent at the end
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert all(c.usage is None for c in body)
    assert last.usage.completion_tokens == count_tokens("reply to draft: Q") + count_tokens(answer)
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


async def test_stream_without_include_usage_has_no_usage_chunk() -> None:
    async with proxy(FunctionClient(replying)) as sdk:
        stream = await sdk.chat.completions.create(
            model="shout-m", messages=[{"role": "user", "content": "Q"}], stream=True
        )
        chunks = [c async for c in stream]
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "REPLY TO SHOUT: Q"


async def test_first_bytes_go_out_before_the_run_ends_and_progress_comes_as_comments() -> None:
    release = anyio.Event()
    drafting = anyio.Event()

    async def gated(prompt: Prompt, settings: GenerationSettings) -> str:
        if last_user(prompt).startswith("draft:"):
            drafting.set()
            await release.wait()
        return replying(prompt, settings)

    async with proxy(FunctionClient(gated)) as sdk:
        url = f"{sdk.base_url}chat/completions"
        body = {"model": "echo-m", "messages": [{"role": "user", "content": "Q"}], "stream": True}
        async with httpx.AsyncClient() as http, http.stream("POST", url, json=body) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            seen: list[str] = []
            with anyio.fail_after(10):
                while not any(line.startswith(": phase draft") for line in seen):
                    seen.append(await anext(lines))
                await drafting.wait()
            # the model call is still blocked, yet the role chunk and the progress are already here
            first = json.loads(seen[0].removeprefix("data: "))
            assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
            release.set()
            seen += [line async for line in lines]
    assert ": phase final (echo) [choice 0]" in seen
    data = [line.removeprefix("data: ") for line in seen if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    pieces = [json.loads(d)["choices"][0]["delta"].get("content") or "" for d in data[1:-1]]
    assert "".join(pieces) == "reply to final: reply to draft: Q"


async def test_streamed_n_and_parallel_choices_each_get_their_answer() -> None:
    async with proxy(FunctionClient(replying)) as sdk:
        stream = await sdk.chat.completions.create(
            model="shout|echo-m", messages=[{"role": "user", "content": "Q"}], stream=True, n=2
        )
        chunks = [c async for c in stream]
    texts: dict[int, str] = {}
    finished: list[int] = []
    for c in chunks:
        for choice in c.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finished.append(choice.index)
    assert texts == {
        0: "REPLY TO SHOUT: Q",
        1: "REPLY TO SHOUT: Q",
        2: "reply to final: reply to draft: Q",
        3: "reply to final: reply to draft: Q",
    }
    assert sorted(finished) == [0, 1, 2, 3]


async def test_a_failure_during_a_stream_arrives_as_an_error_event_then_done() -> None:
    async with proxy(FunctionClient(replying)) as sdk:
        url = f"{sdk.base_url}chat/completions"
        body: dict[str, Any] = {"model": "broken-m", "messages": [{"role": "user", "content": "Q"}], "stream": True}
        async with httpx.AsyncClient() as http:
            response = await http.post(url, json=body)
    assert response.status_code == 200
    events = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "server_error"
    assert error["message"] == "internal server error"
    assert "sk-" not in response.text
    assert "Traceback" not in response.text


async def test_an_os_error_inside_the_run_is_an_error_event_not_a_stream_that_stops() -> None:
    """Only a write to a client that went away ends a stream quietly; the run's own OSError is reported."""

    def reset(prompt: Prompt, settings: GenerationSettings) -> str:
        raise ConnectionResetError("connection reset by peer")

    async with proxy(FunctionClient(reset)) as sdk, httpx.AsyncClient() as http:
        body = {"model": "shout-m", "messages": [{"role": "user", "content": "Q"}], "stream": True}
        with anyio.fail_after(10):
            response = await http.post(f"{sdk.base_url}chat/completions", json=body)
    events = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert "error" in json.loads(events[-2])


async def test_an_exception_group_from_a_strategy_reports_its_first_error() -> None:
    def refused(prompt: Prompt, settings: GenerationSettings) -> str:
        raise RateLimitError("slow down", status_code=429, retry_after=3)

    async with proxy(FunctionClient(refused), registry=grouped_registry()) as sdk, httpx.AsyncClient() as http:
        body = {"model": "grouped-m", "messages": [{"role": "user", "content": "Q"}]}
        with anyio.fail_after(10):
            response = await http.post(f"{sdk.base_url}chat/completions", json=body)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
