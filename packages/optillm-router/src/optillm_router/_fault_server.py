"""Fake providers on 127.0.0.1 that speak every wire format and fail the way real providers do.

:class:`FakeProviderServer` answers one wire format (OpenAI chat completions, Anthropic messages,
Gemini generateContent, Ollama ``/api/chat``), plain or streamed as the request asks, and injects
the faults of a :class:`FaultPlan`. Exported from :mod:`optillm_router.testing`.
"""

from __future__ import annotations as _annotations

import hashlib
import inspect
import json
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, get_args

import anyio
import anyio.lowlevel
from aiohttp import web

from optillm_core import InvalidConfiguration, ToolCall

from ._config import ProviderSpec
from ._fake_tools import (
    anthropic_tool_blocks,
    anthropic_tool_events,
    chat_tool_choice,
    chat_tools,
    gemini_call_parts,
    offered_calls,
    ollama_tool_calls,
    openai_tool_calls,
    openai_tool_deltas,
    tool_refusal,
)
from ._loopback import LoopbackServer, sleep_until

__all__ = (
    "PERMANENT_FAULTS",
    "RECOVERABLE_STREAM_FAULTS",
    "TRANSIENT_FAULTS",
    "FakeProviderServer",
    "FaultKind",
    "FaultPlan",
    "HttpWireFormat",
    "ServedRequest",
    "as_chat",
)

FaultKind = Literal[
    "429", "500", "502", "503", "529", "malformed", "truncated", "cut", "reset", "hang",
    "400", "401", "403", "404", "413", "422",
]  # fmt: skip
"""A fault one request gets:

- ``"429"``: rate limited, with ``retry-after`` (seconds; ``retry-after-ms`` for OpenAI, a
  ``RetryInfo`` in the body for Gemini) set to :attr:`FaultPlan.retry_after`;
- ``"500"``, ``"503"``, ``"529"`` (overloaded), and the permanent ``"400"``, ``"401"``, ``"403"``,
  ``"404"``, ``"413"``, ``"422"``: that status with the provider's own error body;
- ``"502"``: an HTML page from a gateway in front of the provider, as proxies answer;
- ``"malformed"``: status 200 and a body (or a first stream frame) that is not JSON;
- ``"truncated"``: the body ends halfway (with an honest length), or the stream ends cleanly
  before any answer text and without its final frame;
- ``"cut"``: the connection drops in the middle of the answer: a JSON body shorter than its
  ``Content-Length``, or a stream after half of its text. A streamed answer cut this way has
  already delivered text, which no router can take back: it is not retried;
- ``"reset"``: the connection is reset before any answer;
- ``"hang"``: no answer for :attr:`FaultPlan.hang_seconds` (or until the client gives up).
"""

TRANSIENT_FAULTS: tuple[FaultKind, ...] = (
    "429", "500", "502", "503", "529", "malformed", "truncated", "cut", "reset", "hang",
)  # fmt: skip
"""Faults that go away when the request is sent again."""
RECOVERABLE_STREAM_FAULTS: tuple[FaultKind, ...] = tuple(k for k in TRANSIENT_FAULTS if k != "cut")
"""The transient faults that strike a stream before its first piece of text (all but ``"cut"``)."""
PERMANENT_FAULTS: tuple[FaultKind, ...] = ("400", "401", "403", "404", "413", "422")
"""Faults of the request itself: sending it again gives the same answer."""

HttpWireFormat = Literal["openai", "anthropic", "gemini", "ollama"]

_KINDS = frozenset(get_args(FaultKind))
_WIRES: tuple[HttpWireFormat, ...] = get_args(HttpWireFormat)
_PROVIDER = {"openai": "custom", "anthropic": "anthropic", "gemini": "gemini", "ollama": "ollama"}


@dataclass(frozen=True)
class FaultPlan:
    """Which requests fail, and how.

    ``script`` maps a request's number (0 for the first the server received) to its fault (or
    ``None`` for none); every other request fails with probability ``rate``, with a kind drawn
    from ``kinds``. The draw depends only on ``seed``, the request's body (its JSON value, not its
    bytes) and how many identical bodies the server saw before it, never on arrival order, so
    concurrent runs are reproducible.
    """

    rate: float = 0.0
    kinds: tuple[FaultKind, ...] = TRANSIENT_FAULTS
    seed: int = 0
    script: Mapping[int, FaultKind | None] = field(default_factory=dict)
    retry_after: float = 0.2
    """Seconds a 429 asks the client to wait."""
    hang_seconds: float = 3600.0
    """How long a ``"hang"`` holds the request before answering normally (the client gives up first)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise InvalidConfiguration(f"FaultPlan.rate must be between 0 and 1, got {self.rate}")
        if not self.kinds:
            raise InvalidConfiguration("FaultPlan.kinds is empty; give at least one fault kind")
        unknown = sorted({*self.kinds, *(k for k in self.script.values() if k is not None)} - _KINDS)
        if unknown:
            raise InvalidConfiguration(f"unknown fault kinds {unknown}; known: {sorted(_KINDS)}")
        if self.retry_after < 0 or self.hang_seconds < 0:
            raise InvalidConfiguration("FaultPlan.retry_after and hang_seconds must not be negative")

    @classmethod
    def sequence(cls, *faults: FaultKind | None, **options: Any) -> FaultPlan:
        """The first requests get ``faults`` in order (``None``: no fault); later ones none."""
        return cls(script=dict(enumerate(faults)), **options)

    def decide(self, number: int, key: str, occurrence: int) -> FaultKind | None:
        """The fault of request ``number`` whose body is ``key``, seen ``occurrence`` times before."""
        if number in self.script:
            return self.script[number]
        if self.rate <= 0.0:
            return None
        digest = hashlib.blake2b(f"{self.seed}\0{occurrence}\0{key}".encode(), digest_size=16).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 >= self.rate:
            return None
        return self.kinds[int.from_bytes(digest[8:], "big") % len(self.kinds)]


class _Reply(Protocol):
    @property
    def text(self) -> str: ...

    @property
    def finish(self) -> str: ...

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]: ...


@dataclass(frozen=True)
class _Text:
    text: str
    finish: str = "stop"
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class _Calls:
    """A reply as the model can give it: the calls to tools it was offered only."""

    text: str
    finish: str
    tool_calls: tuple[ToolCall, ...]


ReplyFunction = Callable[[dict[str, Any], int], "str | _Reply | Awaitable[str | _Reply]"]


@dataclass
class ServedRequest:
    """One request the server received: ``chat`` is its body in OpenAI's shape, whatever the wire format."""

    number: int
    path: str
    headers: Mapping[str, str]
    body: Any
    chat: dict[str, Any]
    stream: bool
    started_at: float
    fault: FaultKind | None = None
    status: int = 200
    ended_at: float | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.chat.get("messages", [])
        return messages if isinstance(messages, list) else []

    @property
    def user_text(self) -> str:
        return next((str(m.get("content")) for m in reversed(self.messages) if m.get("role") == "user"), "")


def _default_reply(chat: dict[str, Any], choice: int) -> str:
    messages = chat.get("messages") or [{}]
    last = str(messages[-1].get("content", ""))
    return f"Reply {choice} to: {last[:60]}. The answer is \\boxed{{42}}."


def _words(text: str) -> int:
    return len(text.split())


class FakeProviderServer(LoopbackServer):
    """A fake provider of one wire format on 127.0.0.1, on a free port, with injected faults.

    ``reply(chat, choice)`` computes each answer from the request in OpenAI's shape (``messages``
    with roles and text, ``n``, ``temperature``, ``max_tokens``, ``stream``), so one reply function
    serves every format. ``native_n=False`` refuses ``n`` > 1 with a 400 (as llama.cpp does);
    ``max_choices`` silently returns at most that many choices (as Gemini models that ignore
    ``candidateCount`` do). ``latency`` counts from a request's arrival; a stream then sends one
    word per ``token_latency``. Token counts are words.

    Tools: ``chat`` holds the request's tools, tool choice, assistant tool calls and tool results
    in OpenAI's shape too; a reply's ``tool_calls`` (those to tools the request offers) are sent in
    the format's own way, streamed as its provider streams them. The tool checks of
    :func:`~optillm_router._fake_tools.tool_refusal` answer 400 in the provider's words, and
    ``tools=False`` plays a model without tools.
    """

    handler_cancellation = True  # a client that goes away ends the handler, as with a real server

    def __init__(
        self,
        wire: HttpWireFormat = "openai",
        *,
        faults: FaultPlan | None = None,
        reply: ReplyFunction | None = None,
        latency: float = 0.0,
        token_latency: float = 0.0,
        native_n: bool = True,
        max_choices: int | None = None,
        model: str = "fake-model",
        api_key: str | None = None,
        tools: bool = True,
    ) -> None:
        if wire not in _WIRES:
            raise InvalidConfiguration(f"unknown wire format {wire!r}; known: {list(_WIRES)}")
        self.wire: HttpWireFormat = wire
        self.faults = faults or FaultPlan()
        self.reply = reply or _default_reply
        self.latency = latency
        self.token_latency = token_latency
        self.native_n = native_n
        self.max_choices = max_choices
        self.model = model
        self.api_key = api_key
        self.tools = tools
        self.requests: list[ServedRequest] = []
        self.faults_injected: Counter[FaultKind] = Counter()
        self._seen: Counter[str] = Counter()

    # -- addresses -------------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What a provider client takes as ``base_url``: ending in ``/v1`` for OpenAI, the root otherwise."""
        return self.root_url + "/v1" if self.wire == "openai" else self.root_url

    @property
    def provider(self) -> str:
        """The router's provider name for this wire format (``custom`` for OpenAI's)."""
        return _PROVIDER[self.wire]

    def spec(self, **fields: Any) -> ProviderSpec:
        """A :class:`ProviderSpec` pointing at this server (extra ``fields`` go to the spec)."""
        fields.setdefault("api_key", self.api_key)
        if self.wire in ("openai", "gemini"):
            fields.setdefault("native_n", self.native_n)
        return ProviderSpec(self.provider, self.model, base_url=self.base_url, **fields)

    # -- lifecycle -------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        if self.wire == "openai":  # proxies list the upstream's models
            app.router.add_get("/v1/models", self._models)
        app.router.add_post("/{tail:.*}", self._handle)
        return app

    def _thread_name(self) -> str:
        return f"fake-{self.wire}-server"

    # -- one request -------------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "fake"}]}
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        stream = _streaming(self.wire, request.path, body)
        record = ServedRequest(
            number=len(self.requests),
            path=request.path,
            headers=dict(request.headers),
            body=body,
            chat=as_chat(self.wire, body) if isinstance(body, dict) else {},
            stream=stream,
            started_at=started,
        )
        self.requests.append(record)
        try:
            # Requests that arrived together are all stamped before any of them does its work.
            await anyio.lowlevel.checkpoint()
            response = await self._answer(request, record)
            record.status = response.status
            return response
        finally:
            record.ended_at = time.monotonic()

    async def _answer(self, request: web.Request, record: ServedRequest) -> web.StreamResponse:
        if not isinstance(record.body, dict) or not record.chat.get("messages"):
            return self._error(400, "the request body is not a chat request this server understands")
        if self.api_key is not None and _sent_key(self.wire, request) != self.api_key:
            return self._error(401, "invalid API key")
        n = int(record.chat.get("n") or 1)
        if n > 1 and not self.native_n:
            return self._error(400, "Only one completion choice is allowed")
        refused = tool_refusal(self.wire, record.body, tools=self.tools, model=self.model)
        if refused is not None:
            return web.json_response(dict(refused.payload), status=refused.status)
        # The body's JSON written one way, so that a draw does not depend on how the client encoded it.
        key = json.dumps(record.body)
        fault = self.faults.decide(record.number, key, self._seen[key])
        self._seen[key] += 1
        record.fault = fault
        if fault is not None:
            self.faults_injected[fault] += 1
        answer_at = record.started_at + self.latency
        if fault == "hang":
            answer_at += self.faults.hang_seconds
        elif fault == "reset":
            record.status = 0
            await sleep_until(record.started_at + self.latency)
            return await _reset(request)
        elif fault is not None and fault.isdigit():
            await sleep_until(answer_at)
            return self._error(int(fault), f"injected {fault}")
        count = min(n, self.max_choices) if self.max_choices is not None else n
        replies = [await self._reply(record.chat, choice) for choice in range(count)]
        usage = (sum(_words(str(m.get("content") or "")) for m in record.messages), [_words(r.text) for r in replies])
        await sleep_until(answer_at)
        if record.stream:
            return await self._stream(request, record, replies, usage, fault)
        payload = json.dumps(_RENDER[self.wire].body(self.model, replies, usage)).encode()
        if fault == "malformed":
            return web.Response(
                body=payload[: len(payload) // 3] + b"<!-- not json -->", content_type="application/json"
            )
        if fault == "truncated":
            return web.Response(body=payload[: len(payload) // 2], content_type="application/json")
        if fault == "cut":
            return await _cut_body(request, payload)
        return web.Response(body=payload, content_type="application/json")

    async def _reply(self, chat: dict[str, Any], choice: int) -> _Reply:
        result = self.reply(chat, choice)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, str):
            return _Text(result)
        calls = offered_calls(result.tool_calls, chat.get("tools"), chat.get("tool_choice"))
        if calls == result.tool_calls:
            return result
        return _Calls(result.text, "stop" if result.finish == "tool_calls" and not calls else result.finish, calls)

    async def _stream(
        self,
        request: web.Request,
        record: ServedRequest,
        replies: list[_Reply],
        usage: tuple[int, list[int]],
        fault: FaultKind | None,
    ) -> web.StreamResponse:
        render = _RENDER[self.wire]
        preamble, content, ending = render.frames(self.model, replies, usage, record.chat)
        response = web.StreamResponse(headers={"Content-Type": render.stream_type, "Cache-Control": "no-cache"})
        await response.prepare(request)
        if fault == "malformed":
            await response.write(render.garbage)
            await response.write_eof()
            return response
        for frame in preamble:
            await response.write(frame)
        if fault == "truncated":
            await response.write_eof()
            return response
        sent = len(content) // 2 if fault == "cut" else len(content)
        for frame in content[:sent]:
            if self.token_latency:
                await anyio.sleep(self.token_latency)
            await response.write(frame)
        if fault == "cut":
            return await _reset(request, response)
        for frame in ending:
            await response.write(frame)
        await response.write_eof()
        return response

    def _error(self, status: int, message: str) -> web.Response:
        if status == 502:
            page = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
            return web.Response(status=502, text=page, content_type="text/html")
        headers: dict[str, str] = {}
        retry_after = self.faults.retry_after
        if status == 429:
            headers["retry-after"] = f"{retry_after:g}"
            if self.wire == "openai":
                headers["retry-after-ms"] = f"{round(retry_after * 1000)}"
        payload = _RENDER[self.wire].error(status, message, retry_after)
        return web.json_response(payload, status=status, headers=headers)


# -- faults on the connection ------------------------------------------------------------------------


async def _reset(request: web.Request, response: web.StreamResponse | None = None) -> web.StreamResponse:
    """Drop the connection at once with a TCP reset; the handler is cancelled as the connection goes."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    await anyio.sleep_forever()
    return response or web.Response()  # never reached: the handler is cancelled


async def _cut_body(request: web.Request, payload: bytes) -> web.StreamResponse:
    """Promise the whole body in ``Content-Length``, send half of it, then drop the connection."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(payload)
    await response.prepare(request)
    await response.write(payload[: len(payload) // 2])
    return await _reset(request, response)


# -- requests in each wire format --------------------------------------------------------------------


def _streaming(wire: HttpWireFormat, path: str, body: Any) -> bool:
    if wire == "gemini":
        return path.endswith(":streamGenerateContent")
    stream = body.get("stream") if isinstance(body, dict) else None
    return bool(stream) if stream is not None else wire == "ollama"  # Ollama streams unless told not to


def _sent_key(wire: HttpWireFormat, request: web.Request) -> str | None:
    if wire == "anthropic":
        return request.headers.get("x-api-key")
    if wire == "gemini":
        return request.headers.get("x-goog-api-key") or request.query.get("key")
    auth = request.headers.get("Authorization", "")
    return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b)
    return ""


def as_chat(wire: HttpWireFormat, body: dict[str, Any]) -> dict[str, Any]:
    """A request of any wire format in OpenAI's shape (tools, tool calls and tool results included)."""
    if wire in ("openai", "ollama"):
        options = body.get("options") or {}
        chat = {
            "model": body.get("model"),
            "messages": _openai_chat_messages(wire, body),
            "n": body.get("n", 1),
            "temperature": body.get("temperature", options.get("temperature")),
            "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or options.get("num_predict"),
            "stream": body.get("stream"),
            "include_usage": bool((body.get("stream_options") or {}).get("include_usage")),
        }
    elif wire == "anthropic":
        system = _text_of(body.get("system"))
        messages = [{"role": "system", "content": system}] if system else []
        for m in body.get("messages") or ():
            if isinstance(m, dict):
                messages += _anthropic_chat_messages(m)
        chat = {
            "model": body.get("model"),
            "messages": messages,
            "n": 1,
            "temperature": body.get("temperature"),
            "max_tokens": body.get("max_tokens"),
            "stream": body.get("stream"),
        }
    else:
        config = body.get("generationConfig") or {}
        system = _text_of((body.get("systemInstruction") or {}).get("parts"))
        messages = [{"role": "system", "content": system}] if system else []
        messages += _gemini_chat_messages([c for c in body.get("contents") or () if isinstance(c, dict)])
        chat = {
            "model": None,
            "messages": messages,
            "n": config.get("candidateCount", 1),
            "temperature": config.get("temperature"),
            "max_tokens": config.get("maxOutputTokens"),
        }
    tools = chat_tools(wire, body)
    if tools:
        chat["tools"] = tools
    choice = chat_tool_choice(wire, body)
    if choice is not None:
        chat["tool_choice"] = choice
    return chat


def _openai_chat_messages(wire: HttpWireFormat, body: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for m in body.get("messages") or ():
        if not isinstance(m, dict):
            continue
        message: dict[str, Any] = {"role": m.get("role"), "content": _text_of(m.get("content"))}
        calls = [c for c in m.get("tool_calls") or () if isinstance(c, dict)]
        if calls:
            message["tool_calls"] = [
                {
                    "id": c.get("id") or f"call_{len(messages)}_{k}",  # Ollama sends no ids
                    "type": "function",
                    "function": {
                        "name": (c.get("function") or {}).get("name"),
                        "arguments": _json_text((c.get("function") or {}).get("arguments")),
                    },
                }
                for k, c in enumerate(calls)
            ]
        for key in ("tool_call_id", "tool_name"):
            if key in m:
                message[key] = m[key]
        messages.append(message)
    return messages


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value if value is not None else {})


def _anthropic_chat_messages(message: dict[str, Any]) -> list[dict[str, Any]]:
    """One Messages API message as chat messages: tool results first (one ``tool`` message each)."""
    content = message.get("content")
    blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
    results = [
        {"role": "tool", "tool_call_id": b.get("tool_use_id"), "content": _text_of(b.get("content"))}
        for b in blocks
        if b.get("type") == "tool_result"
    ]
    uses = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": _json_text(b.get("input"))},
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    text = _text_of(content)
    if results and not text:
        return results
    chat: dict[str, Any] = {"role": message.get("role"), "content": text}
    if uses:
        chat["tool_calls"] = uses
    return [*results, chat]


def _gemini_chat_messages(contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gemini turns as chat messages; a turn's function responses answer its calls in order (ids made up)."""
    messages: list[dict[str, Any]] = []
    last_calls: list[str] = []
    for content in contents:
        parts = [p for p in content.get("parts") or () if isinstance(p, dict)]
        calls = [p["functionCall"] for p in parts if isinstance(p.get("functionCall"), dict)]
        responses = [p["functionResponse"] for p in parts if isinstance(p.get("functionResponse"), dict)]
        for k, response in enumerate(responses):
            value = response.get("response")
            text = value.get("content") if isinstance(value, dict) and set(value) == {"content"} else None
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": last_calls[k] if k < len(last_calls) else f"call_unknown_{k}",
                    "name": response.get("name"),
                    "content": str(text) if text is not None else json.dumps(value),
                }
            )
        text = _text_of(parts)
        if responses and not text:
            continue
        role = "assistant" if content.get("role") == "model" else "user"
        message: dict[str, Any] = {"role": role, "content": text}
        if calls:
            last_calls = [str(c.get("id") or f"call_{len(messages)}_{k}") for k, c in enumerate(calls)]
            message["tool_calls"] = [
                {
                    "id": i,
                    "type": "function",
                    "function": {"name": c.get("name"), "arguments": _json_text(c.get("args"))},
                }
                for i, c in zip(last_calls, calls, strict=True)
            ]
        messages.append(message)
    return messages


# -- answers in each wire format ---------------------------------------------------------------------

_Usage = tuple[int, list[int]]
"""Prompt words, and the words of each reply."""


def _pieces(text: str) -> list[str]:
    return [word if i == 0 else " " + word for i, word in enumerate(text.split(" "))]


def _sse(payload: Any, event: str | None = None) -> bytes:
    named = f"event: {event}\n" if event else ""
    return f"{named}data: {json.dumps(payload)}\n\n".encode()


class _Render:
    """One wire format's answers, streams and error bodies."""

    stream_type = "text/event-stream"
    garbage = b'data: {"id": "chatcmpl-x", "choices": [{"delta": \n\n'

    def body(self, model: str, replies: list[_Reply], usage: _Usage) -> Any:
        raise NotImplementedError

    def frames(
        self, model: str, replies: list[_Reply], usage: _Usage, chat: dict[str, Any]
    ) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """The frames of a stream: preamble (before any text), content, and ending."""
        raise NotImplementedError

    def error(self, status: int, message: str, retry_after: float) -> Any:
        raise NotImplementedError


class _OpenAI(_Render):
    _TYPES: ClassVar[dict[int | str, str]] = {
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "requests",
    }

    def body(self, model: str, replies: list[_Reply], usage: _Usage) -> Any:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": i, "message": _openai_message(r), "finish_reason": r.finish, "logprobs": None}
                for i, r in enumerate(replies)
            ],
            "usage": _openai_usage(usage),
        }

    def frames(
        self, model: str, replies: list[_Reply], usage: _Usage, chat: dict[str, Any]
    ) -> tuple[list[bytes], list[bytes], list[bytes]]:
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return _sse({**base, "choices": choices, **extra})

        preamble = [
            chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            for i in range(len(replies))
        ]
        content = [
            chunk([{"index": i, "delta": delta, "finish_reason": None}])
            for i, r in enumerate(replies)
            for delta in [{"content": p} for p in _text_pieces(r)] + openai_tool_deltas(r.tool_calls)
        ]
        ending = [chunk([{"index": i, "delta": {}, "finish_reason": r.finish}]) for i, r in enumerate(replies)]
        if chat.get("include_usage"):
            ending.append(chunk([], usage=_openai_usage(usage)))
        ending.append(b"data: [DONE]\n\n")
        return preamble, content, ending

    def error(self, status: int, message: str, retry_after: float) -> Any:
        kind = self._TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        code = "rate_limit_exceeded" if status == 429 else None
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _openai_message(reply: _Reply) -> dict[str, Any]:
    if not reply.tool_calls:
        return {"role": "assistant", "content": reply.text}
    return {"role": "assistant", "content": reply.text or None, "tool_calls": openai_tool_calls(reply.tool_calls)}


def _text_pieces(reply: _Reply) -> list[str]:
    """The reply's text in stream pieces; none for a reply that only calls tools."""
    return [] if reply.tool_calls and not reply.text else _pieces(reply.text)


def _openai_usage(usage: _Usage) -> dict[str, int]:
    prompt, answers = usage
    return {"prompt_tokens": prompt, "completion_tokens": sum(answers), "total_tokens": prompt + sum(answers)}


class _Anthropic(_Render):
    garbage = b'event: message_start\ndata: {"type": "message_start", "message": {\n\n'
    _TYPES: ClassVar[dict[int | str, str]] = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        422: "invalid_request_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }
    _STOP: ClassVar[dict[int | str, str]] = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}

    def body(self, model: str, replies: list[_Reply], usage: _Usage) -> Any:
        reply = replies[0]
        text = [{"type": "text", "text": reply.text}] if reply.text or not reply.tool_calls else []
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": text + anthropic_tool_blocks(reply.tool_calls),
            "stop_reason": self._STOP.get(reply.finish, reply.finish),
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1][0]},
        }

    def frames(
        self, model: str, replies: list[_Reply], usage: _Usage, chat: dict[str, Any]
    ) -> tuple[list[bytes], list[bytes], list[bytes]]:
        reply = replies[0]
        message: dict[str, Any] = {"id": "msg_fake", "type": "message", "role": "assistant", "model": model}
        message |= {"content": [], "usage": {"input_tokens": usage[0], "output_tokens": 1}}
        text = bool(reply.text) or not reply.tool_calls  # a reply that only calls tools has no text block
        preamble = [_sse({"type": "message_start", "message": message}, "message_start")]
        if text:
            block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            preamble.append(_sse(block, "content_block_start"))
        preamble.append(_sse({"type": "ping"}, "ping"))
        content = [
            _sse(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
                "content_block_delta",
            )
            for p in _text_pieces(reply)
        ]
        text_stop = [_sse({"type": "content_block_stop", "index": 0}, "content_block_stop")] if text else []
        if reply.tool_calls:
            content += text_stop + [
                _sse(data, name) for name, data in anthropic_tool_events(reply.tool_calls, int(text))
            ]
            text_stop = []
        stop = self._STOP.get(reply.finish, reply.finish)
        ending = [
            *text_stop,
            _sse(
                {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": usage[1][0]}},
                "message_delta",
            ),
            _sse({"type": "message_stop"}, "message_stop"),
        ]
        return preamble, content, ending

    def error(self, status: int, message: str, retry_after: float) -> Any:
        kind = self._TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}


class _Gemini(_Render):
    garbage = b'data: {"candidates": [{"content": \n\n'
    _STATUS: ClassVar[dict[int | str, str]] = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
        529: "UNAVAILABLE",
    }
    _STOP: ClassVar[dict[int | str, str]] = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}

    def body(self, model: str, replies: list[_Reply], usage: _Usage) -> Any:
        candidates = [
            {
                "content": {"role": "model", "parts": self._parts(r, model)},
                "finishReason": self._STOP.get(r.finish, r.finish.upper()),
                "index": i,
            }
            for i, r in enumerate(replies)
        ]
        return {"candidates": candidates, "usageMetadata": _gemini_usage(usage), "modelVersion": model}

    def frames(
        self, model: str, replies: list[_Reply], usage: _Usage, chat: dict[str, Any]
    ) -> tuple[list[bytes], list[bytes], list[bytes]]:
        content: list[bytes] = []
        for i, reply in enumerate(replies):
            # Text word by word, then each function call whole in a frame of its own.
            parts = [{"text": p} for p in _text_pieces(reply)] + gemini_call_parts(reply.tool_calls, model=model)
            for j, part in enumerate(parts):
                candidate: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": i}
                if j == len(parts) - 1:
                    candidate["finishReason"] = self._STOP.get(reply.finish, reply.finish.upper())
                content.append(_sse({"candidates": [candidate], "modelVersion": model}))
        ending = [_sse({"candidates": [], "usageMetadata": _gemini_usage(usage), "modelVersion": model})]
        return [], content, ending

    def _parts(self, reply: _Reply, model: str) -> list[dict[str, Any]]:
        text = [{"text": reply.text}] if reply.text or not reply.tool_calls else []
        return text + gemini_call_parts(reply.tool_calls, model=model)

    def error(self, status: int, message: str, retry_after: float) -> Any:
        error: dict[str, Any] = {
            "code": status,
            "message": message,
            "status": self._STATUS.get(status, "INVALID_ARGUMENT"),
        }
        if status == 429:
            error["details"] = [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}
            ]
        return {"error": error}


def _gemini_usage(usage: _Usage) -> dict[str, int]:
    prompt, answers = usage
    return {"promptTokenCount": prompt, "candidatesTokenCount": sum(answers), "totalTokenCount": prompt + sum(answers)}


class _Ollama(_Render):
    stream_type = "application/x-ndjson"
    garbage = b'{"model": "fake-model", "message": {\n'

    def body(self, model: str, replies: list[_Reply], usage: _Usage) -> Any:
        reply = replies[0]
        return {
            "model": model,
            "created_at": _now_iso(),
            "message": self._message(reply, reply.text),
            **self._final(reply, usage),
        }

    def _message(self, reply: _Reply, text: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reply.tool_calls:
            message["tool_calls"] = ollama_tool_calls(reply.tool_calls)
        return message

    def frames(
        self, model: str, replies: list[_Reply], usage: _Usage, chat: dict[str, Any]
    ) -> tuple[list[bytes], list[bytes], list[bytes]]:
        reply = replies[0]

        def line(payload: dict[str, Any]) -> bytes:
            return json.dumps({"model": model, "created_at": _now_iso(), **payload}).encode() + b"\n"

        content = [line({"message": {"role": "assistant", "content": p}, "done": False}) for p in _text_pieces(reply)]
        if reply.tool_calls:  # whole calls, in a line of their own
            content.append(line({"message": self._message(reply, ""), "done": False}))
        ending = [line({"message": {"role": "assistant", "content": ""}, **self._final(reply, usage)})]
        return [], content, ending

    def _final(self, reply: _Reply, usage: _Usage) -> dict[str, Any]:
        return {
            "done": True,
            "done_reason": "stop" if reply.finish == "tool_calls" else reply.finish,
            "total_duration": 1_000_000,
            "prompt_eval_count": usage[0],
            "eval_count": usage[1][0],
        }

    def error(self, status: int, message: str, retry_after: float) -> Any:
        return {"error": message}


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


_RENDER: dict[HttpWireFormat, _Render] = {
    "openai": _OpenAI(),
    "anthropic": _Anthropic(),
    "gemini": _Gemini(),
    "ollama": _Ollama(),
}
