"""``POST /v1/messages``: the Anthropic Messages API, answered with the same strategies, pipelines and routing as chat.

A strategy request becomes the same :class:`~optillm_server._strategies.StrategyJob` a chat request
becomes (:func:`~optillm_server._routes.strategy_job`); only the answer's wire format differs. A
request without a strategy goes turn by turn through the model client (the forwarded OpenAI
upstream speaks chat completions only).
"""

from __future__ import annotations as _annotations

import structlog
from starlette.requests import Request
from starlette.responses import Response

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
from ._limits import BUDGET_HEADER, budget_report, exhausted_limit
from ._routes import ServerState, refuse_unsupported, server_state, strategy_job
from ._selection import Selection, select
from ._streaming import DeferredResponse, Exchange, Work
from ._wire import ResponseHeader

__all__ = ("messages", "messages_job")

log = structlog.get_logger("optillm")


async def messages(request: Request) -> Response:
    state = server_state(request)
    parsed = MessagesRequest.parse(await request.body())
    selection = select(parsed.model, parsed.optillm_approach, state.registry.names(), default_model=state.model)
    header = ResponseHeader(model=parsed.model, id=message_id())
    if selection.pass_through:
        client = state.client_for_model(selection.model)
        settings = parsed.settings(client.profile, pass_through=True)
        refuse_unsupported(client, settings, parsed.optillm_drop_unsupported or state.drop_unsupported)
        work = _pass_through(client, parsed, settings, header)
        return DeferredResponse(work, state.scrub, shape=anthropic_error, model=selection.model, strategies=[])
    job = messages_job(state, selection, parsed, header)
    work = _stream(job, parsed) if parsed.stream else _answer(job, parsed)
    strategies = list(selection.strategies)
    return DeferredResponse(work, state.scrub, shape=anthropic_error, model=parsed.model, strategies=strategies)


def messages_job(
    state: ServerState, selection: Selection, parsed: MessagesRequest, header: ResponseHeader
) -> _strategies.StrategyJob:
    """A Messages request as the strategy job a chat request would become: one choice, no ``n``.

    ``a|b`` is refused: it answers once per strategy, and a message holds one answer.
    """
    if selection.mode == "parallel":
        raise ApiError(
            400,
            f"'{'|'.join(selection.strategies)}' runs the strategies side by side, one answer each, and a message "
            "holds one answer: use '&' to chain them, or /v1/chat/completions for side-by-side answers",
            param="optillm_approach" if parsed.optillm_approach else "model",
        )
    client = state.client_for_model(selection.model)
    return strategy_job(
        state,
        selection,
        question=strategy_question(parsed.system_texts(), parsed.strategy_turns()),
        settings=parsed.settings(client.profile, pass_through=False),
        config=parsed.optillm_config,
        n=1,
        messages=len(parsed.messages),
        strategy_param="optillm_approach" if parsed.optillm_approach else "model",
        policy=parsed.optillm_drop_unsupported,
        header=header,
    )


def _answer(job: _strategies.StrategyJob, parsed: MessagesRequest) -> Work:
    async def work(exchange: Exchange) -> None:
        done = await _strategies.run_job(job)
        result = done.results[0]
        payload = message_payload(
            msg_id=job.header.id,
            model=job.header.model,
            text=result.answer,
            usage=done.usage,
            stop_reason=stop_reason_for(result.finish_reason, result.tool_calls),
            thinking=result.thinking if parsed.wants_thinking else "",
            tool_calls=result.tool_calls,
        )
        payload["optillm"] = budget_report(done.meter, done.exhausted)
        headers = {BUDGET_HEADER: exhausted_limit(done.meter)} if done.exhausted else None
        await exchange.json(200, payload, headers)

    return work


def _stream(job: _strategies.StrategyJob, parsed: MessagesRequest) -> Work:
    """``message_start`` at once, progress as comments, ``ping`` while quiet, the answer's text as it comes.

    The thinking behind a strategy's answer is known only when the run ends: its block leads the
    message when no text went out before, and follows the text block otherwise.
    """

    async def work(exchange: Exchange) -> None:
        events = MessageEvents(exchange, msg_id=job.header.id, model=job.header.model)
        await events.start()
        streamed = [""]

        async def relay(note: _strategies.RunNote) -> None:
            if note.kind == "delta":
                streamed[0] += note.text
                await events.text(note.text)
            elif note.kind == "progress":
                await exchange.comment(note.text)
            else:
                await events.ping()

        done = await _strategies.run_live(job, relay)
        error = _strategies.streamed_mismatch(job, done, streamed)
        if error is not None:
            await exchange.fail(error)
            return
        result = done.results[0]
        thinking = result.thinking if parsed.wants_thinking else ""
        if thinking and not streamed[0]:
            await events.thinking(thinking)
        rest = result.answer[len(streamed[0]) :]
        if rest or not result.tool_calls:
            await events.text(rest)
        if thinking and streamed[0]:
            await events.thinking(thinking)
        await events.close_block()
        for position, call in enumerate(result.tool_calls):
            await events.tool_use(position, call)
        await events.finish(stop_reason_for(result.finish_reason, result.tool_calls), done.usage)

    return work


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
