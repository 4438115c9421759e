"""Answering with strategies: running a job (plain, or live with its notes relayed), and the chat endpoint's answers.

:func:`run_job` and :func:`run_live` are what every endpoint answers from; :func:`answer` and
:func:`stream` write a chat request's ``chat.completion`` or its live event stream.
"""

from __future__ import annotations as _annotations

import math
from collections.abc import Awaitable, Callable
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
)
from optillm_core.toolkit import task_group

from ._conversation import StrategyInput
from ._errors import ApiError
from ._limits import BUDGET_HEADER, budget_cut_stream_error, budget_report, exhausted_limit
from ._runs import ChoiceResult, RunSink, StrategyPlan, run_plan
from ._streaming import Exchange, Work
from ._tools import tool_call_chunks
from ._wire import ResponseHeader, chunk, completion

__all__ = ("JobResult", "RunNote", "StrategyJob", "answer", "run_job", "run_live", "stream", "streamed_mismatch")

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


@dataclass(frozen=True)
class JobResult:
    """Every choice's result, in choice order, the run's exact token totals and the request's meter."""

    results: list[ChoiceResult]
    usage: TokenUsage
    meter: MeteredClient

    @property
    def exhausted(self) -> list[int]:
        """The choices whose answer is the best so far of a run the request's budget cut short."""
        return [index for index, result in enumerate(self.results) if result.budget_exhausted]


async def run_job(job: StrategyJob, sink: RunSink | None = None) -> JobResult:
    """Run the job's plan (reporting to ``sink``) through the request's meter and log it: endpoints answer from it."""
    meter = job.meter()
    results = await run_plan(job.plan, job.question, job.settings, meter, sink, job.unsupported)
    usage = meter.usage.tokens
    _log_done(job, usage, meter)
    return JobResult(results=results, usage=usage, meter=meter)


def answer(job: StrategyJob) -> Work:
    async def work(exchange: Exchange) -> None:
        done = await run_job(job)
        results = done.results
        choices: list[tuple[str, FinishReason | None]] = [(r.answer, r.finish_reason) for r in results]
        thinking, calls = [r.thinking for r in results], [r.tool_calls for r in results]
        payload = completion(job.header, choices, done.usage, thinking, calls)
        payload["optillm"] = budget_report(done.meter, done.exhausted)
        headers = {BUDGET_HEADER: exhausted_limit(done.meter)} if done.exhausted else None
        await exchange.json(200, payload, headers)

    return work


@dataclass(frozen=True)
class RunNote:
    """What a live run reports: progress of a choice, a piece of a choice's answer, or a keep-alive tick."""

    kind: Literal["progress", "delta", "tick"]
    index: int = 0
    text: str = ""


@dataclass(frozen=True)
class _Done:
    done: JobResult


class _StreamSink:
    """Feeds a run's progress and answer pieces to the response writer; never blocks the run."""

    def __init__(self, send: MemoryObjectSendStream[RunNote | _Done]) -> None:
        self._send = send

    def progress(self, index: int, note: str) -> None:
        self._send.send_nowait(RunNote("progress", index, note))

    def delta(self, index: int, text: str) -> None:
        self._send.send_nowait(RunNote("delta", index, text))


async def run_live(job: StrategyJob, relay: Callable[[RunNote], Awaitable[None]]) -> JobResult:
    """Run the job while ``relay`` writes each note as it comes, with a tick every ``keepalive_seconds``.

    The run never waits for the writer: notes queue until ``relay`` takes them.
    """
    send, receive = anyio.create_memory_object_stream[RunNote | _Done](math.inf)

    async def produce() -> None:
        send.send_nowait(_Done(await run_job(job, _StreamSink(send))))

    async def tick() -> None:
        while True:
            await anyio.sleep(job.keepalive_seconds)
            send.send_nowait(RunNote("tick"))

    with send, receive:
        async with task_group() as tg:
            tg.start_soon(produce)
            tg.start_soon(tick)
            async for item in receive:
                if isinstance(item, _Done):
                    tg.cancel_scope.cancel()
                    return item.done
                await relay(item)
    raise AssertionError("the run's note stream closed before the run ended")  # pragma: no cover


def stream(job: StrategyJob) -> Work:
    """SSE: role chunks at once, progress as comments, the answer as it is generated, then usage and [DONE]."""

    async def work(exchange: Exchange) -> None:
        header, usage_field = job.header, job.include_usage
        await exchange.start_stream()
        for index in range(job.plan.choices):
            delta = {"role": "assistant", "content": ""}
            await exchange.data(chunk(header, index=index, delta=delta, with_usage_field=usage_field))
        streamed = [""] * job.plan.choices

        async def relay(note: RunNote) -> None:
            await _relay(exchange, job, note, streamed)

        done = await run_live(job, relay)
        await _finish(exchange, job, done, streamed)

    return work


async def _relay(exchange: Exchange, job: StrategyJob, note: RunNote, streamed: list[str]) -> None:
    if note.kind == "delta":
        streamed[note.index] += note.text
        delta = {"content": note.text}
        await exchange.data(chunk(job.header, index=note.index, delta=delta, with_usage_field=job.include_usage))
    elif note.kind == "progress":
        await exchange.comment(f"{note.text} [choice {note.index}]")
    else:
        await exchange.comment("keep-alive")


def streamed_mismatch(job: StrategyJob, done: JobResult, streamed: list[str]) -> ApiError | None:
    """The error for a stream whose live text is not the start of its answer, or ``None`` when every choice's is.

    The client then holds text that is not the answer, so it gets an error event, never a finish on
    the wrong text. That happens when the final call's stream broke and its repeat answered
    differently, when the strategy answered with something else after streaming (MoA's synthesis
    cut off at its token limit, MARS's synthesis failing mid-stream), or when the budget ran out
    mid-stream.
    """
    results = done.results
    abandoned = [i for i, result in enumerate(results) if not result.answer.startswith(streamed[i])]
    if not abandoned:
        return None
    log.warning("streamed text differs from the strategy's answer", choices=abandoned, model=job.header.model)
    cut = [i for i in abandoned if results[i].budget_exhausted]
    return budget_cut_stream_error(exhausted_limit(done.meter), cut) if cut else _abandoned_stream_error(abandoned)


async def _finish(exchange: Exchange, job: StrategyJob, done: JobResult, streamed: list[str]) -> None:
    """Send what the live pieces did not already carry, the finish reasons, the usage chunk and [DONE].

    A choice's tool calls are known once its run ends: each goes out whole, in one
    ``delta.tool_calls`` chunk after the text, and the choice finishes with ``tool_calls``.
    """
    header, usage_field, results = job.header, job.include_usage, done.results
    error = streamed_mismatch(job, done, streamed)
    if error is not None:
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
    for index, result in enumerate(results):
        reason = "tool_calls" if result.tool_calls else result.finish_reason
        payload = chunk(header, index=index, finish_reason=reason, with_usage_field=usage_field)
        payload["optillm"] = budget_report(done.meter, [index] if index in done.exhausted else [])
        await exchange.data(payload)
    if job.include_usage:
        payload = chunk(header, usage=done.usage)
        payload["optillm"] = budget_report(done.meter, done.exhausted)
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
