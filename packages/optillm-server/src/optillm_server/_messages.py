"""``POST /v1/messages``: the Anthropic Messages API, answered with the same strategies, pipelines and routing as chat.

A strategy request becomes the same :class:`~optillm_server._strategies.StrategyJob` a chat request
becomes (through the seam, :mod:`optillm_server._formats`); only the answer's wire format differs. A
request without a strategy goes turn by turn through the model client (the forwarded OpenAI
upstream speaks chat completions only).
"""

from __future__ import annotations as _annotations

from dataclasses import dataclass
from typing import ClassVar

import structlog

from optillm_core import (
    Completed,
    FinishReason,
    GenerationSettings,
    ModelClient,
    OutputTextDelta,
    Prompt,
    ReasoningDelta,
    ResponseEvent,
    TokenUsage,
    ToolCallDelta,
)

from . import _strategies
from ._anthropic_wire import (
    MessageEvents,
    MessagesRequest,
    anthropic_error,
    message_id,
    message_payload,
    stop_reason_for,
)
from ._conversation import strategy_question
from ._errors import ApiError
from ._formats import StrategyCall, WireFormat
from ._limits import BUDGET_HEADER, budget_report, exhausted_limit
from ._routes import ServerState, refuse_unsupported
from ._selection import Selection
from ._streaming import Exchange, Work
from ._wire import ResponseHeader

__all__ = ("MessagesFormat", "refuse_side_by_side")

log = structlog.get_logger("optillm")


@dataclass(frozen=True)
class _MessagesWire:
    parsed: MessagesRequest
    id: str

    @property
    def model(self) -> str:
        return self.parsed.model

    @property
    def optillm_approach(self) -> str | None:
        return self.parsed.optillm_approach

    @property
    def stream(self) -> bool:
        return self.parsed.stream


class MessagesFormat(WireFormat[_MessagesWire]):
    """Anthropic's Messages API: one answer per request (no ``n``, no ``a|b``), errors in Anthropic's shape."""

    name: ClassVar[str] = "anthropic messages"
    path: ClassVar[str] = "/v1/messages"

    def shape(self, error: ApiError) -> ApiError:
        return anthropic_error(error)

    def read(self, raw: bytes) -> _MessagesWire:
        return _MessagesWire(MessagesRequest.parse(raw), message_id())

    def pass_through(self, state: ServerState, raw: bytes, request: _MessagesWire, selection: Selection) -> Work:
        parsed = request.parsed
        client = state.client_for_model(selection.model)
        settings = parsed.settings(client.profile, pass_through=True)
        refuse_unsupported(client, settings, parsed.optillm_drop_unsupported or state.drop_unsupported)
        return _pass_through(client, parsed, settings, ResponseHeader(model=parsed.model, id=request.id))

    def strategy_call(self, state: ServerState, request: _MessagesWire, selection: Selection) -> StrategyCall:
        """A Messages request as the strategy job a chat request would become: one choice, no ``n``.

        ``a|b`` is refused: it answers once per strategy, and a message holds one answer.
        """
        parsed = request.parsed
        refuse_side_by_side(selection, parsed.optillm_approach, "a message")
        client = state.client_for_model(selection.model)
        return StrategyCall(
            question=strategy_question(parsed.system_texts(), parsed.strategy_turns()),
            settings=parsed.settings(client.profile, pass_through=False),
            config=parsed.optillm_config,
            messages=len(parsed.messages),
            policy=parsed.optillm_drop_unsupported,
            header=ResponseHeader(model=parsed.model, id=request.id),
        )

    async def answer(
        self, exchange: Exchange, job: _strategies.StrategyJob, request: _MessagesWire, done: _strategies.JobResult
    ) -> None:
        result = done.results[0]
        payload = message_payload(
            msg_id=job.header.id,
            model=job.header.model,
            text=result.answer,
            usage=done.usage,
            stop_reason=stop_reason_for(result.finish_reason, result.tool_calls),
            thinking=result.thinking if request.parsed.wants_thinking else "",
            tool_calls=result.tool_calls,
        )
        payload["optillm"] = budget_report(done.meter, done.exhausted)
        headers = {BUDGET_HEADER: exhausted_limit(done.meter)} if done.exhausted else None
        await exchange.json(200, payload, headers)

    def live(self, exchange: Exchange, job: _strategies.StrategyJob, request: _MessagesWire) -> _MessagesLive:
        return _MessagesLive(exchange, job, request.parsed)


def refuse_side_by_side(selection: Selection, approach: str | None, holder: str) -> None:
    """``a|b`` answers once per strategy: a 400 where the format's answer (``holder``) holds one."""
    if selection.mode == "parallel":
        raise ApiError(
            400,
            f"'{'|'.join(selection.strategies)}' runs the strategies side by side, one answer each, and {holder} "
            "holds one answer: use '&' to chain them, or /v1/chat/completions for side-by-side answers",
            param="optillm_approach" if approach else "model",
        )


class _MessagesLive:
    """``message_start`` at once, progress as comments, ``ping`` while quiet, the answer's text as it comes.

    The thinking behind a strategy's answer is known only when the run ends: its block leads the
    message when no text went out before, and follows the text block otherwise.
    """

    def __init__(self, exchange: Exchange, job: _strategies.StrategyJob, parsed: MessagesRequest) -> None:
        self._exchange = exchange
        self._parsed = parsed
        self._events = MessageEvents(exchange, msg_id=job.header.id, model=job.header.model)
        self.streamed = [""]

    async def start(self) -> None:
        await self._events.start()

    async def note(self, note: _strategies.RunNote) -> None:
        if note.kind == "delta":
            self.streamed[0] += note.text
            await self._events.text(note.text)
        elif note.kind == "progress":
            await self._exchange.comment(note.text)
        else:
            await self._events.ping()

    async def finish(self, done: _strategies.JobResult) -> None:
        events, streamed = self._events, self.streamed[0]
        result = done.results[0]
        thinking = result.thinking if self._parsed.wants_thinking else ""
        if thinking and not streamed:
            await events.thinking(thinking)
        rest = result.answer[len(streamed) :]
        if rest or not result.tool_calls:
            await events.text(rest)
        if thinking and streamed:
            await events.thinking(thinking)
        await events.close_block()
        for position, call in enumerate(result.tool_calls):
            await events.tool_use(position, call)
        await events.finish(stop_reason_for(result.finish_reason, result.tool_calls), done.usage)


def _pass_through(
    client: ModelClient, parsed: MessagesRequest, settings: GenerationSettings, header: ResponseHeader
) -> Work:
    prompt = Prompt(messages=parsed.conversation())

    async def plain(exchange: Exchange) -> None:
        result = await client.complete(prompt, settings)
        payload = message_payload(
            msg_id=header.id,
            model=header.model,
            text=result.text,
            usage=result.usage,
            stop_reason=stop_reason_for(result.finish_reason(0), result.calls),
            thinking=result.reasoning if parsed.wants_thinking else "",
            tool_calls=result.calls,
        )
        await exchange.json(200, payload)

    async def streamed(exchange: Exchange) -> None:
        await _stream_with_client(exchange, client, prompt, settings, parsed, header)

    return streamed if parsed.stream else plain


async def _stream_with_client(
    exchange: Exchange,
    client: ModelClient,
    prompt: Prompt,
    settings: GenerationSettings,
    parsed: MessagesRequest,
    header: ResponseHeader,
) -> None:
    """The model's events as Anthropic's, as they arrive: thinking, text and tool calls each in their own blocks."""
    events = MessageEvents(exchange, msg_id=header.id, model=header.model)
    usage = TokenUsage()
    finish: FinishReason | None = None
    called = False

    async def relay(event: ResponseEvent) -> None:
        nonlocal usage, finish, called
        if isinstance(event, Completed):
            usage = event.usage or TokenUsage()
            finish = event.finish_reasons[0] if event.finish_reasons else None
        elif event.index != 0:
            return  # one choice: Messages has no n
        elif isinstance(event, OutputTextDelta):
            await events.text(event.delta)
        elif isinstance(event, ReasoningDelta):
            if parsed.wants_thinking:
                await events.thinking(event.delta)
        elif isinstance(event, ToolCallDelta):
            called = True
            await events.tool_piece(event.call, call_id=event.id, name=event.name, arguments=event.arguments)

    async with client.stream(prompt, settings) as stream:
        # waiting for the first event lets a failure before any output keep its HTTP status (429, 529 …)
        first = await anext(aiter(stream), None)
        await events.start()
        if first is not None:
            await relay(first)
        async for event in stream:
            await relay(event)
    reason = stop_reason_for(finish)
    await events.finish("tool_use" if called and reason == "end_turn" else reason, usage)
