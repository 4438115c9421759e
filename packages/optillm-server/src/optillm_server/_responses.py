"""``POST /v1/responses`` and ``GET /v1/responses/{id}``: the OpenAI Responses API on the wire-format seam.

A request without a strategy goes turn by turn through the model client (every provider, whatever
its own wire); a strategy request becomes the same job a chat request becomes. The answer is a
``response`` object, or the event sequence the openai SDK's ``responses.stream()`` and Codex CLI
read: ``response.created`` and ``response.in_progress`` at once, a ``response.in_progress`` for
each step of a strategy's progress and every ``keepalive_seconds`` while it is quiet (real events,
which reset Codex's idle timer where SSE comments do not), each output item opened, streamed and
closed, then ``response.completed`` (or ``response.incomplete``) with the whole response. Every
event carries a ``sequence_number`` that rises by one. A failure once the stream has begun is a
``response.failed`` event with a code Codex understands, and the stream closes right after it.
"""

from __future__ import annotations as _annotations

import json
import math
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from optillm_core import (
    Completed,
    FinishReason,
    Message,
    ModelClient,
    OutputTextDelta,
    Prompt,
    ReasoningDelta,
    TokenUsage,
    ToolCall,
    ToolCallDelta,
)

from . import _strategies
from ._conversation import strategy_question
from ._errors import ApiError
from ._formats import StrategyCall, WireFormat
from ._limits import BUDGET_HEADER, budget_report, exhausted_limit
from ._messages import refuse_side_by_side
from ._responses_wire import ResponsesInput, ResponsesRequest, ToolSet, custom_input, read_input
from ._routes import ServerState, refuse_unsupported, server_state
from ._selection import Selection
from ._streaming import Exchange, Work
from ._wire import ResponseHeader

__all__ = ("ResponsesFormat", "get_response", "response_error_code")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class _ResponsesWire:
    """A Responses request, its tools as the model sees them, and (once read) its conversation."""

    def __init__(self, parsed: ResponsesRequest) -> None:
        self.parsed = parsed
        self.tools: ToolSet = parsed.tool_set()
        self.header = ResponseHeader(model=parsed.model, id=_new_id("resp"))
        self.conversation = ResponsesInput((), ())
        self.store: Any = None

    @property
    def model(self) -> str:
        return self.parsed.model

    @property
    def optillm_approach(self) -> str | None:
        return self.parsed.optillm_approach

    @property
    def stream(self) -> bool:
        return self.parsed.stream

    def read_conversation(self, state: ServerState) -> ResponsesInput:
        """The input after the stored turns of ``previous_response_id`` (an unknown or evicted id is a 400)."""
        earlier: tuple[Message, ...] = ()
        previous = self.parsed.previous_response_id
        if previous is not None:
            stored = state.responses.get(previous)
            if stored is None:
                raise ApiError(
                    400,
                    f"Previous response with id '{previous}' not found (it was not stored, or this server has "
                    "restarted or evicted it since: see ServerLimits.max_stored_responses)",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            earlier = stored.turns
        self.conversation = read_input(self.parsed, earlier)
        self.store = state.responses
        return self.conversation

    def remember(self, payload: Mapping[str, Any], answer: str, calls: tuple[ToolCall, ...]) -> None:
        """Store the finished response (when the request asked for it) with the turns a follow-up continues."""
        if self.parsed.stored and self.store is not None:
            turns = (*self.conversation.turns, Message.assistant(answer, tool_calls=calls))
            self.store.put(self.header.id, payload, turns)


class ResponsesFormat(WireFormat[_ResponsesWire]):
    name: ClassVar[str] = "responses"
    path: ClassVar[str] = "/v1/responses"

    def read(self, raw: bytes) -> _ResponsesWire:
        return _ResponsesWire(ResponsesRequest.parse(raw))

    def pass_through(self, state: ServerState, raw: bytes, request: _ResponsesWire, selection: Selection) -> Work:
        client = state.client_for_model(selection.model)
        parsed = request.parsed
        settings = parsed.settings(request.tools, client.profile, pass_through=True)
        refuse_unsupported(client, settings, parsed.optillm_drop_unsupported or state.drop_unsupported)
        prompt = Prompt(messages=request.read_conversation(state).client_messages())
        if not prompt.messages:
            raise ApiError(400, "'input' has no items: send at least one message", param="input")

        async def plain(exchange: Exchange) -> None:
            result = await client.complete(prompt, settings)
            builder = _Output(request)
            if result.reasoning and parsed.wants_reasoning:
                builder.reasoning(result.reasoning)
            if result.text or not result.calls:
                builder.message(result.text)
            for call in result.calls:
                builder.call(call)
            payload = builder.response(result.usage, result.finish_reason(0))
            request.remember(payload, result.text, result.calls)
            await exchange.json(200, payload)

        async def streamed(exchange: Exchange) -> None:
            await _relay_client_stream(exchange, client, prompt, settings, request)

        return streamed if parsed.stream else plain

    def strategy_call(self, state: ServerState, request: _ResponsesWire, selection: Selection) -> StrategyCall:
        parsed = request.parsed
        refuse_side_by_side(selection, parsed.optillm_approach, "a response")
        parsed.refuse_structured_output()
        client = state.client_for_model(selection.model)
        conversation = request.read_conversation(state)
        return StrategyCall(
            question=strategy_question(list(conversation.system), list(conversation.turns)),
            settings=parsed.settings(request.tools, client.profile, pass_through=False),
            config=parsed.optillm_config,
            messages=len(conversation.turns),
            policy=parsed.optillm_drop_unsupported,
            header=request.header,
        )

    async def answer(
        self, exchange: Exchange, job: _strategies.StrategyJob, request: _ResponsesWire, done: _strategies.JobResult
    ) -> None:
        result = done.results[0]
        builder = _Output(request)
        if result.thinking and request.parsed.wants_reasoning:
            builder.reasoning(result.thinking)
        if result.answer or not result.tool_calls:
            builder.message(result.answer)
        for call in result.tool_calls:
            builder.call(call)
        payload = builder.response(done.usage, result.finish_reason, budget_report(done.meter, done.exhausted))
        request.remember(payload, result.answer, result.tool_calls)
        headers = {BUDGET_HEADER: exhausted_limit(done.meter)} if done.exhausted else None
        await exchange.json(200, payload, headers)

    def live(self, exchange: Exchange, job: _strategies.StrategyJob, request: _ResponsesWire) -> _ResponsesLive:
        return _ResponsesLive(exchange, request)


async def get_response(request: Request) -> Response:
    """``GET /v1/responses/{id}``: a stored response as it was answered, or OpenAI's 404."""
    state = server_state(request)
    response_id = request.path_params["response_id"]
    stored = state.responses.get(response_id)
    if stored is None:
        raise ApiError(
            404,
            f"Response with id '{response_id}' not found.",
            param="response_id",
            code="response_not_found",
            kind="invalid_request_error",
        )
    return JSONResponse(dict(stored.payload))


# -- the response object -------------------------------------------------------------------------


def usage_payload(usage: TokenUsage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = (
        [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" else []
    )
    return {"type": "message", "id": item_id, "role": "assistant", "status": status, "content": content}


def reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"type": "reasoning", "id": item_id, "summary": summary}


def call_item(call: ToolCall, tools: ToolSet, status: str = "completed") -> dict[str, Any]:
    """A ``function_call`` item (``arguments``: JSON text), or a ``custom_tool_call`` for a freeform tool."""
    done = status == "completed"
    if tools.is_custom(call.name):
        return {
            "type": "custom_tool_call",
            "id": _new_id("ctc"),
            "call_id": call.id,
            "name": call.name,
            "input": custom_input(call) if done else "",
            "status": status,
        }
    return {
        "type": "function_call",
        "id": _new_id("fc"),
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments if done else "",
        "status": status,
    }


class _Output:
    """The output items of one response as they are made, and the response object around them."""

    def __init__(self, request: _ResponsesWire) -> None:
        self.request = request
        self.items: list[dict[str, Any]] = []

    def reasoning(self, text: str) -> dict[str, Any]:
        self.items.append(reasoning_item(_new_id("rs"), text))
        return self.items[-1]

    def message(self, text: str) -> dict[str, Any]:
        self.items.append(message_item(_new_id("msg"), text))
        return self.items[-1]

    def call(self, call: ToolCall) -> dict[str, Any]:
        self.items.append(call_item(call, self.request.tools))
        return self.items[-1]

    def response(
        self,
        usage: TokenUsage | None,
        finish: FinishReason | None,
        report: Mapping[str, Any] | None = None,
        *,
        status: str | None = None,
        error: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The ``response`` object; ``incomplete`` when the answer hit its token limit."""
        incomplete = finish == "length" and error is None and status is None
        return response_object(
            self.request,
            status=status or ("incomplete" if incomplete else "completed"),
            output=list(self.items),
            usage=usage,
            error=error,
            incomplete=({"reason": "max_output_tokens"} if incomplete else None),
            report=report,
        )


def response_object(
    request: _ResponsesWire,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: TokenUsage | None = None,
    error: Mapping[str, Any] | None = None,
    incomplete: Mapping[str, Any] | None = None,
    report: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    parsed = request.parsed
    reasoning = parsed.reasoning.model_dump() if parsed.reasoning is not None else {"effort": None, "summary": None}
    text_format = parsed.text.format if parsed.text is not None and parsed.text.format else {"type": "text"}
    payload: dict[str, Any] = {
        "id": request.header.id,
        "object": "response",
        "created_at": request.header.created,
        "status": status,
        "model": parsed.model,
        "output": output,
        "error": dict(error) if error is not None else None,
        "incomplete_details": dict(incomplete) if incomplete is not None else None,
        "instructions": parsed.instructions,
        "metadata": dict(parsed.metadata or {}),
        "parallel_tool_calls": parsed.parallel_tool_calls is not False,
        "tool_choice": parsed.tool_choice if parsed.tool_choice is not None else "auto",
        "tools": list(parsed.tools or ()),
        "temperature": parsed.temperature,
        "top_p": parsed.top_p,
        "max_output_tokens": parsed.max_output_tokens,
        "previous_response_id": parsed.previous_response_id,
        "reasoning": reasoning,
        "text": {"format": text_format, "verbosity": parsed.text.verbosity if parsed.text else None},
        "store": parsed.stored,
        "truncation": "disabled",
        "service_tier": parsed.service_tier,
        "prompt_cache_key": parsed.prompt_cache_key,
        "usage": usage_payload(usage) if usage is not None else None,
    }
    optillm: dict[str, Any] = dict(report or {})
    if request.tools.dropped:
        optillm["dropped_tools"] = list(request.tools.dropped)
    if optillm:
        payload["optillm"] = optillm
    return payload


# -- streaming -----------------------------------------------------------------------------------


def response_error_code(error: ApiError) -> tuple[str, str]:
    """The ``code`` and message of a ``response.failed`` event, in the terms Codex CLI classifies.

    A rate limit is ``rate_limit_exceeded`` with "Please try again in N s" (Codex waits that long
    and retries); an overloaded or unavailable upstream is ``server_is_overloaded``; a prompt over
    the model's context is ``context_length_exceeded``; another refused request ``invalid_prompt``.
    Other failures keep their own code (Codex retries those).
    """
    message = error.message
    if error.status == 429 or error.code == "rate_limit_exceeded":
        wait = error.retry_after if error.retry_after is not None else 1.0
        return "rate_limit_exceeded", f"{message}. Please try again in {math.ceil(wait * 1000) / 1000}s."
    lowered = message.lower()
    if "context length" in lowered or "context window" in lowered or "maximum context" in lowered:
        return "context_length_exceeded", message
    if error.status in (503, 529) or error.code == "upstream_unavailable":
        return "server_is_overloaded", message
    if error.code == "upstream_bad_request":
        return "invalid_prompt", message
    return error.code or error.kind, message


class ResponseEvents:
    """The event sequence of one streamed response, each event numbered; items opened, streamed and closed."""

    def __init__(self, exchange: Exchange, request: _ResponsesWire) -> None:
        self._exchange = exchange
        self._request = request
        self._output = _Output(request)
        self._sequence = 0
        self._open: dict[str, Any] | None = None
        self._open_text = ""
        self._in_progress: dict[str, Any] | None = None
        self._pending: list[str] = []

    def _payload(self, kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return payload

    def _emit(self, kind: str, **fields: Any) -> None:
        """Queue an event; :meth:`_flush` writes the queued ones in one piece (one ASGI message, not one each)."""
        data = json.dumps(self._payload(kind, fields), separators=(",", ":"))
        self._pending.append(f"event: {kind}\ndata: {data}\n\n")

    async def _flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            await self._exchange.write("".join(pending).encode())

    def _snapshot(self) -> dict[str, Any]:
        """The response while it is in progress (no output yet), as lifecycle events carry it; built once."""
        if self._in_progress is None:
            self._in_progress = response_object(self._request, status="in_progress", output=[])
        return self._in_progress

    async def start(self) -> None:
        await self._exchange.start_stream()
        self._exchange.closing = self._failed
        self._emit("response.created", response=self._snapshot())
        self._emit("response.in_progress", response=self._snapshot())
        await self._flush()

    async def progress(self, note: str | None = None, choice: int = 0) -> None:
        """A ``response.in_progress`` event: a strategy's step (``note``), or a keep-alive while it is quiet."""
        fields: dict[str, Any] = {"response": self._snapshot()}
        if note is not None:
            fields["optillm"] = {"progress": note, "choice": choice}
        self._emit("response.in_progress", **fields)
        await self._flush()

    @property
    def _index(self) -> int:
        return len(self._output.items) - 1

    async def text(self, piece: str) -> None:
        """A piece of the answer's text: the first opens the message item and its ``output_text`` part."""
        if self._open is None or self._open["type"] != "message":
            await self.close()
            item = message_item(_new_id("msg"), "", status="in_progress")
            self._output.items.append(item)
            self._open, self._open_text = item, ""
            self._emit("response.output_item.added", output_index=self._index, item=item)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            self._emit(
                "response.content_part.added", item_id=item["id"], output_index=self._index, content_index=0, part=part
            )
        if piece:
            self._open_text += piece
            self._emit(
                "response.output_text.delta",
                item_id=self._open["id"],
                output_index=self._index,
                content_index=0,
                delta=piece,
                logprobs=[],
            )
        await self._flush()

    async def reasoning(self, piece: str) -> None:
        """A piece of the thinking, as a ``reasoning`` item's summary (what Codex shows as the model's thinking)."""
        if self._open is None or self._open["type"] != "reasoning":
            await self.close()
            item = reasoning_item(_new_id("rs"), "")
            self._output.items.append(item)
            self._open, self._open_text = item, ""
            self._emit("response.output_item.added", output_index=self._index, item=item)
            self._emit(
                "response.reasoning_summary_part.added",
                item_id=item["id"],
                output_index=self._index,
                summary_index=0,
                part={"type": "summary_text", "text": ""},
            )
        if piece:
            self._open_text += piece
            self._emit(
                "response.reasoning_summary_text.delta",
                item_id=self._open["id"],
                output_index=self._index,
                summary_index=0,
                delta=piece,
            )
        await self._flush()

    async def close(self) -> None:
        """Close the open message or reasoning item (its ``.done`` events and ``response.output_item.done``)."""
        item, text = self._open, self._open_text
        if item is None:
            return
        self._open = None
        index, item_id = self._index, item["id"]
        if item["type"] == "message":
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            self._emit(
                "response.output_text.done",
                item_id=item_id,
                output_index=index,
                content_index=0,
                text=text,
                logprobs=[],
            )
            self._emit("response.content_part.done", item_id=item_id, output_index=index, content_index=0, part=part)
            done = message_item(item_id, text)
        else:
            part = {"type": "summary_text", "text": text}
            self._emit(
                "response.reasoning_summary_text.done", item_id=item_id, output_index=index, summary_index=0, text=text
            )
            self._emit(
                "response.reasoning_summary_part.done", item_id=item_id, output_index=index, summary_index=0, part=part
            )
            done = reasoning_item(item_id, text)
        self._output.items[index] = done
        self._emit("response.output_item.done", output_index=index, item=done)
        await self._flush()

    async def call(self, call: ToolCall) -> None:
        """A whole tool call: its item opened, its arguments (or freeform input) in one delta, then closed."""
        await self.close()
        tools = self._request.tools
        item = call_item(call, tools, status="in_progress")
        self._output.items.append(item)
        index, item_id = self._index, item["id"]
        self._emit("response.output_item.added", output_index=index, item=item)
        done = {**item, "status": "completed"}
        if item["type"] == "custom_tool_call":
            done["input"] = custom_input(call)
            self._emit(
                "response.custom_tool_call_input.delta", item_id=item_id, output_index=index, delta=done["input"]
            )
            self._emit("response.custom_tool_call_input.done", item_id=item_id, output_index=index, input=done["input"])
        else:
            done["arguments"] = call.arguments
            self._emit(
                "response.function_call_arguments.delta", item_id=item_id, output_index=index, delta=call.arguments
            )
            self._emit(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=index,
                name=call.name,
                arguments=call.arguments,
            )
        self._output.items[index] = done
        self._emit("response.output_item.done", output_index=index, item=done)
        await self._flush()

    async def finish(
        self, usage: TokenUsage, finish: FinishReason | None, report: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Close the last item (an answer with no item gets an empty message), then ``response.completed``."""
        if not self._output.items:
            await self.text("")
        await self.close()
        response = self._output.response(usage, finish, report)
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        self._emit(kind, response=response)
        await self._flush()
        return response

    def _failed(self, error: ApiError) -> bytes:
        """``response.failed`` with the error's Codex code: the bytes that end a stream that failed."""
        code, message = response_error_code(error)
        response = self._output.response(None, None, status="failed", error={"code": code, "message": message})
        data = json.dumps(self._payload("response.failed", {"response": response}), separators=(",", ":"))
        pending, self._pending = self._pending, []
        return "".join([*pending, f"event: response.failed\ndata: {data}\n\n"]).encode()


class _ResponsesLive:
    """A strategy's live answer: its progress as ``response.in_progress`` events, its text as it comes."""

    def __init__(self, exchange: Exchange, request: _ResponsesWire) -> None:
        self._request = request
        self._events = ResponseEvents(exchange, request)
        self.streamed = [""]

    async def start(self) -> None:
        await self._events.start()

    async def note(self, note: _strategies.RunNote) -> None:
        if note.kind == "delta":
            self.streamed[0] += note.text
            await self._events.text(note.text)
        elif note.kind == "progress":
            await self._events.progress(note.text, note.index)
        else:
            await self._events.progress()

    async def finish(self, done: _strategies.JobResult) -> None:
        """The thinking (known once the run ends) as a reasoning item, the rest of the text, the calls."""
        events, streamed, result = self._events, self.streamed[0], done.results[0]
        if result.thinking and self._request.parsed.wants_reasoning:
            await events.reasoning(result.thinking)
            await events.close()
        rest = result.answer[len(streamed) :]
        if rest or streamed or not result.tool_calls:
            await events.text(rest)
        await events.close()
        for call in result.tool_calls:
            await events.call(call)
        report = budget_report(done.meter, done.exhausted)
        response = await events.finish(done.usage, result.finish_reason, report)
        self._request.remember(response, result.answer, result.tool_calls)


async def _relay_client_stream(
    exchange: Exchange, client: ModelClient, prompt: Prompt, settings: Any, request: _ResponsesWire
) -> None:
    """The model's events as the Responses API's, as they arrive: reasoning, text, then the calls whole.

    The stream starts at once, so a provider failure reaches the client as ``response.failed`` with a
    code Codex acts on (it does not retry an HTTP 429, but waits and retries a failed response).
    """
    events = ResponseEvents(exchange, request)
    await events.start()
    usage, finish = TokenUsage(), None
    pieces: dict[int, dict[str, str]] = {}
    text = ""
    async with client.stream(prompt, settings) as stream:
        async for event in stream:
            if isinstance(event, Completed):
                usage = event.usage or TokenUsage()
                finish = event.finish_reasons[0] if event.finish_reasons else None
            elif event.index != 0:
                continue  # one answer: the Responses API has no n
            elif isinstance(event, OutputTextDelta):
                text += event.delta
                await events.text(event.delta)
            elif isinstance(event, ReasoningDelta):
                if request.parsed.wants_reasoning:
                    await events.reasoning(event.delta)
            elif isinstance(event, ToolCallDelta):
                piece = pieces.setdefault(event.call, {"id": "", "name": "", "arguments": ""})
                piece["id"] = event.id or piece["id"] or f"call_{event.index}_{event.call}"
                piece["name"] = event.name or piece["name"]
                piece["arguments"] += event.arguments
    await events.close()
    calls = tuple(
        ToolCall(id=p["id"], name=p["name"], arguments=p["arguments"] or "{}") for _, p in sorted(pieces.items())
    )
    for call in calls:
        await events.call(call)
    response = await events.finish(usage, finish)
    request.remember(response, text, calls)
