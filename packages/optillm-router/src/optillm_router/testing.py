"""Fake providers on 127.0.0.1 for tests and benchmarks.

``FakeOpenAIServer`` speaks ``POST /v1/chat/completions`` (JSON, and SSE with
``stream_options.include_usage``) and ``GET /v1/models``, with configurable latency, native ``n``
on or off, injected faults, and a log of every request from which calls, peak concurrency and
sequential depth follow::

    async with FakeOpenAIServer(latency=0.1) as server:
        ...  # point a client at server.base_url

    with FakeOpenAIServer().running_in_thread() as server:  # for sync code and subprocesses
        ...

With ``real_model`` (a name from :data:`REAL_MODELS`, or a :class:`RealModel`) it answers as that
model does: a 400 in the provider's words for a setting the model refuses or a limit above its
cap, and thinking in the model's form (``<think>`` tags, ``reasoning_content``, hidden).

``FakeProviderServer(wire)`` speaks one of every wire format the router does (``"openai"``,
``"anthropic"``, ``"gemini"``, ``"ollama"``), plain or streamed as the request asks, and fails
the way real providers do, following a ``FaultPlan``::

    plan = FaultPlan(rate=0.3, kinds=TRANSIENT_FAULTS, seed=7)  # 30 % of requests fail
    plan = FaultPlan.sequence("429", None, "cut")  # or scripted: request 0, 1, 2...
    async with FakeProviderServer("anthropic", faults=plan, latency=0.05) as server:
        router = ModelClientRouter(ProviderRoutingConfig(primary=server.spec()))
        ...
    server.requests[i].fault, server.requests[i].chat["messages"], server.faults_injected

Fault kinds (``FaultKind``): ``"429"`` (with ``retry-after``), ``"500"``, ``"502"`` (a gateway's
HTML page), ``"503"``, ``"529"``, ``"malformed"`` (200, not JSON), ``"truncated"`` (a body or
stream that ends early), ``"cut"`` (the connection drops mid-answer), ``"reset"``, ``"hang"``;
``TRANSIENT_FAULTS`` holds these, ``RECOVERABLE_STREAM_FAULTS`` those that strike a stream before
its first text (a stream cut mid-answer has delivered text and cannot be retried), and
``PERMANENT_FAULTS`` ``"400"``, ``"401"``, ``"403"``, ``"404"``, ``"413"``, ``"422"``. A plan's
draws depend on its seed and each request's body, not on arrival order, so concurrent runs
are reproducible. ``reply(chat, choice)`` gets every request in OpenAI's shape, so one reply
function serves every format; ``server.spec(**fields)`` is a ``ProviderSpec`` pointing at it.

Tools: a reply may call tools, ``FakeReply(text, tool_calls=(ToolCall(...),))`` (only tools the
request offers, none under ``tool_choice`` ``none``), and ``tool_caller(when=..., arguments=...)``
is a reply function that uses tools as a chat model does. Every fake checks tools and tool turns as
its provider does and answers 400 in its words (a ``tool_choice`` naming no offered tool, a tool
result answering no call, a call left unanswered, tools sent to a model without them:
``tools=False``, or ``real_model="o1-mini"``), and streams tool calls as its provider does::

    async with FakeProviderServer("anthropic", reply=tool_caller(when="weather")) as server:
        ...  # a request offering tools and asking about the weather gets a tool_use block
    server.requests[0].chat["tools"], server.requests[1].chat["messages"][-1]  # the tool result
"""

from __future__ import annotations as _annotations

import inspect
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import anyio
import anyio.lowlevel
from aiohttp import web

from optillm_core import ToolCall

from ._fake_models import REAL_MODELS, RealModel, openai_deltas, openai_message, openai_usage, refusal, shown_thinking
from ._fake_models import real_model as _real_model
from ._fake_tools import offered_calls, tool_refusal
from ._fault_server import (
    PERMANENT_FAULTS,
    RECOVERABLE_STREAM_FAULTS,
    TRANSIENT_FAULTS,
    FakeProviderServer,
    FaultKind,
    FaultPlan,
    HttpWireFormat,
    ServedRequest,
)
from ._loopback import LoopbackServer, sleep_until

__all__ = (
    "PERMANENT_FAULTS",
    "REAL_MODELS",
    "RECOVERABLE_STREAM_FAULTS",
    "TRANSIENT_FAULTS",
    "FakeOpenAIServer",
    "FakeProviderServer",
    "FakeReply",
    "FakeRequest",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "HttpWireFormat",
    "RealModel",
    "ServedRequest",
    "count_words",
    "tool_caller",
)


def count_words(text: str) -> int:
    """The fake server's token count: one token per whitespace-separated word."""
    return len(text.split())


@dataclass(frozen=True)
class FakeReply:
    """What the fake model says; ``finish_reason`` ``"length"`` marks a truncated answer.

    ``thinking`` is what a real model (``real_model``) thinks first (it makes some up when ``None``).
    ``tool_calls`` are the calls it makes, sent when the request offers those tools (a model calls
    no tool it was not given, and none under ``tool_choice`` ``none``); the finish reason is then
    ``tool_calls`` unless ``finish_reason`` says otherwise.
    """

    text: str
    finish_reason: str | None = None
    thinking: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def finish(self) -> str:
        """The finish reason sent: ``finish_reason``, else ``tool_calls`` or ``stop``."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


@dataclass(frozen=True)
class Fault:
    """An injected failure for one request.

    ``kind``: ``"status"`` answers ``status`` with ``body`` and ``headers``; ``"malformed"`` answers
    200 with a body that is not JSON; ``"truncate"`` cuts a stream after its first chunk (or a JSON
    body in the middle); ``"hang"`` waits ``delay`` seconds before answering normally.
    """

    kind: Literal["status", "malformed", "truncate", "hang"] = "status"
    status: int = 500
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class FakeRequest:
    """One request the server received (``time.monotonic`` times; ``client_port``: its connection's port)."""

    path: str
    headers: Mapping[str, str]
    body: dict[str, Any]
    started_at: float
    ended_at: float | None = None
    status: int = 200
    client_port: int | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages", [])
        return messages if isinstance(messages, list) else []

    @property
    def user_text(self) -> str:
        return next((str(m.get("content")) for m in reversed(self.messages) if m.get("role") == "user"), "")


ReplyFunction = Callable[[dict[str, Any], int], "str | FakeReply | Awaitable[str | FakeReply]"]
FaultFunction = Callable[[int, dict[str, Any]], "Fault | None"]


_PLAIN = RealModel("fake-model", "openai")
"""The model a ``FakeOpenAIServer`` without ``real_model`` plays: it takes everything and shows no thinking."""


def _default_reply(body: dict[str, Any], choice: int) -> str:
    messages = body.get("messages") or [{}]
    last = str(messages[-1].get("content", ""))
    return f"Reply {choice} to: {last[:60]}. The answer is \\boxed{{42}}."


def tool_caller(
    *,
    when: str | None = None,
    arguments: Mapping[str, Any] | Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
    calls: int = 1,
    answer: Callable[[list[str]], str] | None = None,
    otherwise: Callable[[dict[str, Any], int], str | FakeReply] | None = None,
) -> Callable[[dict[str, Any], int], str | FakeReply]:
    """A reply function for the fakes that uses tools the way a chat model does.

    It reads the request in OpenAI's shape (every fake hands it so, whatever the wire format):

    - when the last messages are tool results, it answers in text: ``answer(results)``, by default
      ``"The tools said: ..."`` with the results joined;
    - when the request offers tools, ``tool_choice`` is not ``none``, and the choice forces a call
      (``required`` or one named tool) or ``when`` is ``None`` or occurs in the last user message, it
      calls the named tool, else the first ``calls`` tools offered (several: parallel calls), with
      ``arguments`` (a mapping, or a function of the request; ``{}`` by default);
    - otherwise it answers as ``otherwise`` does (by default the fakes' usual reply).

    Call ids are ``call_<messages>_<choice>_<k>``: unique within a conversation.
    """

    def reply(body: dict[str, Any], choice: int) -> str | FakeReply:
        messages = [m for m in body.get("messages") or () if isinstance(m, Mapping)]
        results: list[str] = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            results.insert(0, str(message.get("content") or ""))
        if results:
            return FakeReply(answer(results) if answer is not None else "The tools said: " + "; ".join(results))
        tools = [t.get("function") or {} for t in body.get("tools") or () if isinstance(t, Mapping)]
        choice_made = body.get("tool_choice")
        forced = choice_made == "required" or isinstance(choice_made, Mapping)
        question = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
        if tools and choice_made != "none" and (forced or when is None or when in question):
            if isinstance(choice_made, Mapping):
                names = [str((choice_made.get("function") or {}).get("name"))]
            else:
                names = [str(t.get("name")) for t in tools[: max(calls, 1)]]
            given = arguments(body) if callable(arguments) else arguments
            text = json.dumps(dict(given or {}))
            made = tuple(
                ToolCall(id=f"call_{len(messages)}_{choice}_{k}", name=name, arguments=text)
                for k, name in enumerate(names)
            )
            return FakeReply("", tool_calls=made)
        return otherwise(body, choice) if otherwise is not None else _default_reply(body, choice)

    return reply


class FakeOpenAIServer(LoopbackServer):
    """A fake OpenAI-compatible chat server bound to 127.0.0.1 on a free port.

    Each chat request is answered ``latency`` seconds after it arrived (the reply function runs
    inside that time); streams then send one word per ``token_latency``. Tools are checked as
    OpenAI checks them (a ``tool_choice`` naming no offered tool, a ``tool`` message answering no
    call of the assistant message before it, a call left unanswered, arguments that are not text:
    400s in OpenAI's words), and ``tools=False`` plays a model without them (a 400 for any
    request offering tools). A reply's ``tool_calls`` come back as ``message.tool_calls`` and,
    streamed, as OpenAI streams them: each call's id and name, then its arguments in fragments.
    """

    def __init__(
        self,
        *,
        reply: ReplyFunction | None = None,
        latency: float = 0.0,
        token_latency: float = 0.0,
        native_n: bool = True,
        faults: Mapping[int, Fault] | FaultFunction | None = None,
        model: str = "fake-model",
        api_key: str | None = None,
        models: tuple[str, ...] = ("fake-model",),
        real_model: str | RealModel | None = None,
        tools: bool = True,
    ) -> None:
        self.real_model = None if real_model is None else _real_model(real_model)
        self.tools = tools if self.real_model is None else self.real_model.tools
        self.reply = reply or _default_reply
        self.latency = latency
        self.token_latency = token_latency
        self.native_n = native_n
        self.faults = faults
        self.model = model
        self.api_key = api_key
        self.models = models
        self.requests: list[FakeRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ending in ``/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def chat_requests(self) -> list[FakeRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def intervals(self) -> list[tuple[float, float]]:
        """(start, end) of every finished chat request, for ``optillm_core.testing.sequential_depth``."""
        return [(r.started_at, r.ended_at) for r in self.chat_requests if r.ended_at is not None]

    # -- lifecycle -------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        return app

    def _thread_name(self) -> str:
        return "fake-openai-server"

    # -- handlers --------------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        denied = self._check_key(request)
        if denied is not None:
            return denied
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    def _check_key(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")

    def _fault_for(self, index: int, body: dict[str, Any]) -> Fault | None:
        if self.faults is None:
            return None
        if isinstance(self.faults, Mapping):
            return self.faults.get(index)
        return self.faults(index, body)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        record = FakeRequest(
            path=request.path,
            headers=dict(request.headers),
            body={},
            started_at=time.monotonic(),
            client_port=peer[1] if peer else None,
        )
        self.requests.append(record)
        index = len(self.requests) - 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            # Requests that arrived together are all stamped before any of them does its work.
            await anyio.lowlevel.checkpoint()
            response = await self._answer(request, record, index)
            record.status = response.status
            return response
        finally:
            self.in_flight -= 1
            record.ended_at = time.monotonic()

    async def _answer(self, request: web.Request, record: FakeRequest, index: int) -> web.StreamResponse:
        denied = self._check_key(request)
        if denied is not None:
            return denied
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "'messages' is a required property", "invalid_request_error", param="messages")
        record.body = body
        if self.real_model is not None:
            refused = refusal(self.real_model, body)
        else:
            refused = tool_refusal("openai", body, tools=self.tools)
        if refused is not None:
            await sleep_until(record.started_at + self.latency)
            return web.json_response(dict(refused.payload), status=refused.status)
        n = int(body.get("n") or 1)
        if n > 1 and not self.native_n:
            return _error(400, "Only one completion choice is allowed", "invalid_request_error", param="n")
        fault = self._fault_for(index, body)
        answer_at = record.started_at + self.latency
        if fault is not None and fault.kind == "status":
            await sleep_until(answer_at)
            payload = fault.body if fault.body is not None else {"error": {"message": f"injected {fault.status}"}}
            if isinstance(payload, str):
                return web.Response(status=fault.status, text=payload, headers=dict(fault.headers))
            return web.json_response(payload, status=fault.status, headers=dict(fault.headers))
        if fault is not None and fault.kind == "hang":
            answer_at += fault.delay
        # The latency runs from the request's arrival, so the server's own work (the reply
        # function, above all) happens inside it instead of adding to every call's duration.
        replies = [await self._reply(body, choice) for choice in range(n)]
        prompt_tokens = sum(count_words(str(m.get("content") or "")) for m in body["messages"])
        if self.real_model is not None:
            replies = [replace(r, thinking=shown_thinking(self.real_model, body, r.thinking)) for r in replies]
            usage = openai_usage(prompt_tokens, [r.text for r in replies], [r.thinking or "" for r in replies])
        else:
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": sum(count_words(r.text) for r in replies)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream"):
            await sleep_until(answer_at)
            return await self._stream(request, body, replies, usage, fault)
        response = self._completion_response(body, replies, usage, index, fault)
        await sleep_until(answer_at)
        return response

    def _message(self, reply: FakeReply) -> dict[str, Any]:
        model = self.real_model or _PLAIN
        return openai_message(model, reply.text, reply.thinking or "", reply.tool_calls)

    def _deltas(self, reply: FakeReply) -> list[dict[str, Any]]:
        if self.real_model is None and not reply.tool_calls:
            return [{"content": w if i == 0 else " " + w} for i, w in enumerate(reply.text.split(" "))]
        model = self.real_model or _PLAIN
        return openai_deltas(model, reply.text, reply.thinking or "", reply.tool_calls) or [{"content": ""}]

    def _completion_response(
        self, body: dict[str, Any], replies: list[FakeReply], usage: dict[str, Any], index: int, fault: Fault | None
    ) -> web.Response:
        if fault is not None and fault.kind == "malformed":
            return web.Response(status=200, text='{"id": "chatcmpl-x", "choices": [', content_type="application/json")
        payload = {
            "id": f"chatcmpl-{index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [
                {
                    "index": i,
                    "message": self._message(r),
                    "finish_reason": r.finish,
                    "logprobs": None,
                }
                for i, r in enumerate(replies)
            ],
            "usage": usage,
        }
        if fault is not None and fault.kind == "truncate":
            text = json.dumps(payload)
            return web.Response(status=200, text=text[: len(text) // 2], content_type="application/json")
        return web.json_response(payload)

    async def _reply(self, body: dict[str, Any], choice: int) -> FakeReply:
        result = self.reply(body, choice)
        if inspect.isawaitable(result):
            result = await result
        reply = result if isinstance(result, FakeReply) else FakeReply(str(result))
        calls = offered_calls(reply.tool_calls, body.get("tools"), body.get("tool_choice"))
        return reply if calls == reply.tool_calls else replace(reply, tool_calls=calls)

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        replies: list[FakeReply],
        usage: dict[str, Any],
        fault: Fault | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        base = {"id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": int(time.time())}
        base["model"] = body.get("model", self.model)

        async def send(chunk: dict[str, Any]) -> None:
            await response.write(f"data: {json.dumps({**base, **chunk})}\n\n".encode())

        for i in range(len(replies)):
            await send(
                {"choices": [{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
            )
        if fault is not None and fault.kind == "malformed":
            await response.write(b"data: {not json\n\n")
            return response
        for i, reply in enumerate(replies):
            for delta in self._deltas(reply):
                if self.token_latency:
                    await anyio.sleep(self.token_latency)
                await send({"choices": [{"index": i, "delta": delta, "finish_reason": None}]})
                if fault is not None and fault.kind == "truncate":
                    return response  # connection ends without a finish chunk or [DONE]
            await send({"choices": [{"index": i, "delta": {}, "finish_reason": reply.finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await send({"choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _error(status: int, message: str, kind: str, code: str | None = None, param: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "param": param, "code": code}}, status=status)
