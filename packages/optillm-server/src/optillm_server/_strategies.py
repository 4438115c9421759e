"""Answering a chat request with strategies: one complete ``chat.completion``, or a live event stream."""

from __future__ import annotations as _annotations

import math
from dataclasses import dataclass
from typing import Literal

import anyio
import structlog
from anyio.streams.memory import MemoryObjectSendStream

from optillm_core import (
    Budget,
    FinishReason,
    GenerationSettings,
    MeteredClient,
    ModelClient,
    TokenUsage,
    UnsupportedPolicy,
    task_group,
)

from ._conversation import StrategyInput
from ._errors import ApiError
from ._limits import BUDGET_HEADER, budget_cut_stream_error, budget_report, exhausted_limit
from ._runs import ChoiceResult, StrategyPlan, run_plan
from ._streaming import Exchange, Work
from ._tools import tool_call_chunks
from ._wire import ResponseHeader, chunk, completion

__all__ = ("StrategyJob", "answer", "stream")

log = structlog.get_logger("optillm")


@dataclass(frozen=True)
class StrategyJob:
    """Everything one strategy request needs; nothing in it is shared with other requests but the client."""

    plan: StrategyPlan
    question: StrategyInput
    settings: GenerationSettings
    client: ModelClient
    header: ResponseHeader
    include_usage: bool = False
    keepalive_seconds: float = 15.0
    unsupported: UnsupportedPolicy = "drop"
    budget: Budget | None = None
    """The request's budget, shared by all its choices and stages (one meter around ``client``)."""

    def meter(self) -> MeteredClient:
        """The request's meter: every call of every choice and stage goes through it, under the budget."""
        return MeteredClient(self.client, budget=self.budget)


def answer(job: StrategyJob) -> Work:
    async def work(exchange: Exchange) -> None:
        meter = job.meter()
        results = await run_plan(job.plan, job.question, job.settings, meter, unsupported=job.unsupported)
        usage = meter.usage.tokens
        _log_done(job, usage, meter)
        choices: list[tuple[str, FinishReason | None]] = [(r.answer, "stop") for r in results]
        thinking, calls = [r.thinking for r in results], [r.tool_calls for r in results]
        payload = completion(job.header, choices, usage, thinking, calls)
        exhausted = [i for i, r in enumerate(results) if r.budget_exhausted]
        payload["optillm"] = budget_report(meter, exhausted)
        headers = {BUDGET_HEADER: exhausted_limit(meter)} if exhausted else None
        await exchange.json(200, payload, headers)

    return work


@dataclass(frozen=True)
class _Note:
    kind: Literal["progress", "delta", "tick"]
    index: int = 0
    text: str = ""


@dataclass(frozen=True)
class _Done:
    results: list[ChoiceResult]


class _StreamSink:
    """Feeds a run's progress and answer pieces to the response writer; never blocks the run."""

    def __init__(self, send: MemoryObjectSendStream[_Note | _Done]) -> None:
        self._send = send

    def progress(self, index: int, note: str) -> None:
        self._send.send_nowait(_Note("progress", index, note))

    def delta(self, index: int, text: str) -> None:
        self._send.send_nowait(_Note("delta", index, text))


def stream(job: StrategyJob) -> Work:
    """SSE: role chunks at once, progress as comments, the answer as it is generated, then usage and [DONE]."""

    async def work(exchange: Exchange) -> None:
        header, usage_field = job.header, job.include_usage
        await exchange.start_stream()
        for index in range(job.plan.choices):
            delta = {"role": "assistant", "content": ""}
            await exchange.data(chunk(header, index=index, delta=delta, with_usage_field=usage_field))
        send, receive = anyio.create_memory_object_stream[_Note | _Done](math.inf)
        streamed = [""] * job.plan.choices
        meter = job.meter()

        async def produce() -> None:
            sink = _StreamSink(send)
            results = await run_plan(job.plan, job.question, job.settings, meter, sink, job.unsupported)
            send.send_nowait(_Done(results))

        async def tick() -> None:
            while True:
                await anyio.sleep(job.keepalive_seconds)
                send.send_nowait(_Note("tick"))

        done: _Done | None = None
        with send, receive:
            async with task_group() as tg:
                tg.start_soon(produce)
                tg.start_soon(tick)
                async for item in receive:
                    if isinstance(item, _Done):
                        done = item
                        tg.cancel_scope.cancel()
                        break
                    await _relay(exchange, job, item, streamed)
        if done is not None:
            await _finish(exchange, job, done.results, streamed, meter)

    return work


async def _relay(exchange: Exchange, job: StrategyJob, note: _Note, streamed: list[str]) -> None:
    if note.kind == "delta":
        streamed[note.index] += note.text
        delta = {"content": note.text}
        await exchange.data(chunk(job.header, index=note.index, delta=delta, with_usage_field=job.include_usage))
    elif note.kind == "progress":
        await exchange.comment(f"{note.text} [choice {note.index}]")
    else:
        await exchange.comment("keep-alive")


async def _finish(
    exchange: Exchange, job: StrategyJob, results: list[ChoiceResult], streamed: list[str], meter: MeteredClient
) -> None:
    """Send what the live pieces did not already carry, the finish reasons, the usage chunk and [DONE].

    A choice's tool calls are known once its run ends: each goes out whole, in one
    ``delta.tool_calls`` chunk after the text, and the choice finishes with ``tool_calls``.

    When a choice's streamed text is not the start of its answer, the client holds text that is not
    the answer: it gets an error event and [DONE], never a ``finish_reason`` on the wrong text. That
    happens when the final call's stream broke and its repeat answered differently, when the
    strategy answered with something else after streaming (MoA's synthesis cut off at its token
    limit, MARS's synthesis failing mid-stream), or when the budget ran out mid-stream.
    """
    header, usage_field = job.header, job.include_usage
    abandoned = [i for i, result in enumerate(results) if not result.answer.startswith(streamed[i])]
    if abandoned:
        log.warning("streamed text differs from the strategy's answer", choices=abandoned, model=header.model)
        cut = [i for i in abandoned if results[i].budget_exhausted]
        error = budget_cut_stream_error(exhausted_limit(meter), cut) if cut else _abandoned_stream_error(abandoned)
        await exchange.fail(error)
        return
    for index, result in enumerate(results):
        if result.thinking:  # known once the run ends; reasoning clients read it from reasoning_content
            delta = {"reasoning_content": result.thinking}
            await exchange.data(chunk(header, index=index, delta=delta, with_usage_field=usage_field))
        rest = result.answer[len(streamed[index]) :]
        if rest:
            await exchange.data(chunk(header, index=index, delta={"content": rest}, with_usage_field=usage_field))
        for delta in tool_call_chunks(result.tool_calls):
            await exchange.data(chunk(header, index=index, delta=delta, with_usage_field=usage_field))
    exhausted = [i for i, r in enumerate(results) if r.budget_exhausted]
    for index, result in enumerate(results):
        reason = "tool_calls" if result.tool_calls else "stop"
        payload = chunk(header, index=index, finish_reason=reason, with_usage_field=usage_field)
        payload["optillm"] = budget_report(meter, [index] if index in exhausted else [])
        await exchange.data(payload)
    usage = meter.usage.tokens
    _log_done(job, usage, meter)
    if job.include_usage:
        payload = chunk(header, usage=usage)
        payload["optillm"] = budget_report(meter, exhausted)
        await exchange.data(payload)
    await exchange.done()


def _abandoned_stream_error(choices: list[int]) -> ApiError:
    message = (
        f"the strategy's answer for choice(s) {choices} is not the text it streamed (its final call was cut off, "
        "failed, or was repeated with a different answer): the text streamed so far is not the answer; send the "
        "request again, or without stream"
    )
    return ApiError(502, message, kind="upstream_error", code="upstream_stream_abandoned")


def _log_done(job: StrategyJob, usage: TokenUsage, meter: MeteredClient) -> None:
    log.info(
        "strategy request answered",
        model=job.header.model,
        strategies=[o.name for o in job.plan.optimizers],
        choices=job.plan.choices,
        llm_calls=meter.usage.llm_calls,
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
    )
