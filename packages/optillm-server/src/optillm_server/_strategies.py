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

from optillm_core import FinishReason, GenerationSettings, ModelClient, TokenUsage, UnsupportedPolicy, task_group

from ._conversation import StrategyInput
from ._errors import ApiError
from ._runs import ChoiceResult, RunSink, StrategyPlan, run_plan
from ._streaming import Exchange, Work
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


@dataclass(frozen=True)
class JobResult:
    """Every choice's result, in choice order, and the run's exact token totals."""

    results: list[ChoiceResult]
    usage: TokenUsage


async def run_job(job: StrategyJob, sink: RunSink | None = None) -> JobResult:
    """Run the job's plan (reporting to ``sink``) and log it; what every endpoint answers from."""
    results = await run_plan(job.plan, job.question, job.settings, job.client, sink, job.unsupported)
    usage = _total(results)
    _log_done(job, usage)
    return JobResult(results=results, usage=usage)


def answer(job: StrategyJob) -> Work:
    async def work(exchange: Exchange) -> None:
        done = await run_job(job)
        choices: list[tuple[str, FinishReason | None]] = [(r.answer, "stop") for r in done.results]
        thinking = [r.thinking for r in done.results]
        await exchange.json(200, completion(job.header, choices, done.usage, thinking))

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


def streamed_mismatch(job: StrategyJob, results: list[ChoiceResult], streamed: list[str]) -> ApiError | None:
    """The error for a stream whose live text is not the start of its answer, or ``None`` when every choice's is.

    That happens when a broken final stream was repeated and answered differently: the client holds
    text that is not the answer, so it gets an error event, never a finish on the wrong text.
    """
    abandoned = [i for i, result in enumerate(results) if not result.answer.startswith(streamed[i])]
    if not abandoned:
        return None
    log.warning("streamed text differs from the strategy's answer", choices=abandoned, model=job.header.model)
    return _abandoned_stream_error(abandoned)


async def _finish(exchange: Exchange, job: StrategyJob, done: JobResult, streamed: list[str]) -> None:
    """Send what the live pieces did not already carry, the finish reasons, the usage chunk and [DONE]."""
    header, usage_field, results = job.header, job.include_usage, done.results
    error = streamed_mismatch(job, results, streamed)
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
    for index in range(len(results)):
        await exchange.data(chunk(header, index=index, finish_reason="stop", with_usage_field=usage_field))
    if job.include_usage:
        await exchange.data(chunk(header, usage=done.usage))
    await exchange.done()


def _abandoned_stream_error(choices: list[int]) -> ApiError:
    message = (
        f"the upstream stream broke and its call was repeated with a different answer for choice(s) {choices}; "
        "the text streamed so far is not the answer: send the request again"
    )
    return ApiError(502, message, kind="upstream_error", code="upstream_stream_abandoned")


def _total(results: list[ChoiceResult]) -> TokenUsage:
    return sum((r.usage for r in results), TokenUsage())


def _log_done(job: StrategyJob, usage: TokenUsage) -> None:
    log.info(
        "strategy request answered",
        model=job.header.model,
        strategies=[o.name for o in job.plan.optimizers],
        choices=job.plan.choices,
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
    )
