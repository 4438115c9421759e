"""Running a strategy job: plainly, or live with its notes relayed; what every wire format answers from.

:func:`run_job` and :func:`run_live` run the job; :func:`streamed_mismatch` tells whether a live
answer's streamed text is the start of its answer (see :mod:`optillm_server._formats`).
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
    GenerationSettings,
    MeteredClient,
    ModelClient,
    TokenUsage,
    UnsupportedPolicy,
)
from optillm_core.toolkit import task_group

from ._conversation import StrategyInput
from ._errors import ApiError
from ._limits import budget_cut_stream_error, exhausted_limit
from ._runs import ChoiceResult, RunSink, StrategyPlan, run_plan
from ._wire import ResponseHeader

__all__ = ("JobResult", "RunNote", "StrategyJob", "run_job", "run_live", "streamed_mismatch")

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
