"""The wire-format seam: what each API the proxy speaks implements, and the one endpoint that drives them all.

A :class:`WireFormat` turns its API's request into either a pass-through (the provider's answer,
relayed in the format) or a :class:`StrategyCall` (the conversation as core messages, the
settings, the strategy options); writes a strategy's answer as one object; relays a live run's
notes (answer pieces, progress, keep-alive ticks) through a :class:`LiveAnswer`; and puts errors in
its API's shape. :func:`endpoint` does the rest once for every format: it picks the strategies
(:func:`~optillm_server._selection.select`), builds the job with
:func:`~optillm_server._routes.strategy_job` (so every format refuses the same requests the same
way), runs it plain or live, and checks that a live answer's streamed text is its answer.
"""

from __future__ import annotations as _annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from optillm_core import GenerationSettings, UnsupportedPolicy

from . import _strategies
from ._conversation import StrategyInput
from ._errors import ApiError
from ._routes import ServerState, server_state, strategy_job
from ._selection import Selection, select
from ._streaming import DeferredResponse, Exchange, Work
from ._wire import ResponseHeader

__all__ = ("LiveAnswer", "StrategyCall", "WireFormat", "WireRequest", "endpoint")


class WireRequest(Protocol):
    """What the seam reads of any format's parsed request: the model, the strategy field and streaming."""

    @property
    def model(self) -> str: ...

    @property
    def optillm_approach(self) -> str | None: ...

    @property
    def stream(self) -> bool: ...


R = TypeVar("R", bound=WireRequest)


@dataclass(frozen=True)
class StrategyCall:
    """A strategy request as a wire format reads it: what :func:`~optillm_server._routes.strategy_job` takes.

    ``question`` comes from :func:`~optillm_server._conversation.strategy_question` (system parts
    and core message turns), whichever format it came in.
    """

    question: StrategyInput
    settings: GenerationSettings
    config: Mapping[str, Any] | None
    messages: int
    policy: UnsupportedPolicy | None
    header: ResponseHeader
    n: int = 1
    include_usage: bool = False


class LiveAnswer(Protocol):
    """A live strategy answer being written: started at once, fed each note, finished with the run's result.

    ``streamed`` holds each choice's text sent so far; the seam checks it against the answer
    before :meth:`finish` (a mismatch ends the stream with an error instead).
    """

    streamed: list[str]

    async def start(self) -> None: ...

    async def note(self, note: _strategies.RunNote) -> None: ...

    async def finish(self, done: _strategies.JobResult) -> None: ...


class WireFormat(ABC, Generic[R]):
    """One API the proxy speaks (chat completions, Anthropic Messages, Responses).

    Subclasses read requests (:meth:`read`), refuse what only their API cannot carry (in
    :meth:`strategy_call`), and write answers, live runs and the provider's own stream in their
    wire format. Everything shared (selection, limits, budgets, settings the model refuses, tools
    a strategy cannot answer with) happens in the seam, once.
    """

    name: ClassVar[str]
    """The API's name, for logs."""
    path: ClassVar[str]
    """The endpoint's path; errors under it (from middleware too) take this format's shape."""

    def shape(self, error: ApiError) -> ApiError:
        """``error`` in this API's shape and status (OpenAI's by default)."""
        return error

    @abstractmethod
    def read(self, raw: bytes) -> R:
        """The request body, checked (a 400 naming what is wrong)."""

    @abstractmethod
    def pass_through(self, state: ServerState, raw: bytes, request: R, selection: Selection) -> Work:
        """A request without a strategy: the provider's answer (plain, or its stream relayed) in this format."""

    @abstractmethod
    def strategy_call(self, state: ServerState, request: R, selection: Selection) -> StrategyCall:
        """A strategy request as a :class:`StrategyCall`, or a 400 for what this API cannot carry."""

    @abstractmethod
    async def answer(
        self, exchange: Exchange, job: _strategies.StrategyJob, request: R, done: _strategies.JobResult
    ) -> None:
        """Write the finished run's answer as one object."""

    @abstractmethod
    def live(self, exchange: Exchange, job: _strategies.StrategyJob, request: R) -> LiveAnswer:
        """The writer of a live (streamed) answer to ``request``."""

    def strategy_work(self, job: _strategies.StrategyJob, request: R) -> Work:
        """The work of a strategy request: the run, then its answer (plain or live)."""
        if request.stream:
            return _live_work(self, job, request)

        async def plain(exchange: Exchange) -> None:
            await self.answer(exchange, job, request, await _strategies.run_job(job))

        return plain


def endpoint(fmt: WireFormat[Any]) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint of ``fmt``: read, select, pass through or run a strategy, answer in ``fmt``.

    A request that names no strategy (in its model name or ``optillm_approach``) runs the server's
    default approach, if it has one.
    """

    async def handle(request: Request) -> Response:
        state = server_state(request)
        raw = await request.body()
        wire = fmt.read(raw)
        approach = wire.optillm_approach
        installed = state.registry.names()
        selection = select(wire.model, approach, installed, default_model=state.model)
        if selection.pass_through and approach is None and state.default_approach is not None:
            selection = select(wire.model, state.default_approach, installed, default_model=state.model)
        if selection.pass_through:
            work = fmt.pass_through(state, raw, wire, selection)
            return DeferredResponse(work, state.scrub, shape=fmt.shape, model=selection.model, strategies=[])
        call = fmt.strategy_call(state, wire, selection)
        job = strategy_job(
            state,
            selection,
            question=call.question,
            settings=call.settings,
            config=call.config,
            n=call.n,
            messages=call.messages,
            strategy_param="optillm_approach" if approach else "model",
            policy=call.policy,
            header=call.header,
            include_usage=call.include_usage,
        )
        strategies = list(selection.strategies)
        work = fmt.strategy_work(job, wire)
        return DeferredResponse(work, state.scrub, shape=fmt.shape, model=wire.model, strategies=strategies)

    return handle


def _live_work(fmt: WireFormat[R], job: _strategies.StrategyJob, request: R) -> Work:
    async def work(exchange: Exchange) -> None:
        live = fmt.live(exchange, job, request)
        await live.start()
        done = await _strategies.run_live(job, live.note)
        error = _strategies.streamed_mismatch(job, done, live.streamed)
        if error is not None:
            await exchange.fail(error)
            return
        await live.finish(done)

    return work
