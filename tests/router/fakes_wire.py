"""A scripted HTTP server on 127.0.0.1 for provider wire-format tests.

Each POST gets the next :class:`Scripted` answer (or one computed from the request): a status,
headers and a body written chunk by chunk, optionally held open until the client goes away.
The server records every request and notices disconnects, so tests can check the exact wire
body and that cancelling a call closes its connection.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import anyio
from aiohttp import web

from optillm_core import AuthenticationError, BadRequestError, ClientError, ProviderUnavailable, RateLimitError

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class Scripted:
    """One answer: ``chunks`` are written in order; ``hold`` keeps the response open afterwards."""

    status: int = 200
    chunks: Sequence[bytes] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    hold: bool = False


@dataclass
class Received:
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any


def json_answer(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Scripted:
    return Scripted(status=status, chunks=(json.dumps(payload).encode(),), headers=headers or {})


def sse_answer(chunks: Iterable[bytes], *, hold: bool = False) -> Scripted:
    return Scripted(chunks=tuple(chunks), content_type="text/event-stream", hold=hold)


def ndjson_answer(chunks: Iterable[bytes], *, hold: bool = False) -> Scripted:
    return Scripted(chunks=tuple(chunks), content_type="application/x-ndjson", hold=hold)


def sse_events(*events: Any) -> list[bytes]:
    """SSE frames: a dict is sent as ``data:``; an ``(event, dict)`` pair names the event; bytes go as they are."""
    frames: list[bytes] = []
    for event in events:
        if isinstance(event, bytes):
            frames.append(event)
        elif isinstance(event, tuple):
            frames.append(f"event: {event[0]}\ndata: {json.dumps(event[1])}\n\n".encode())
        else:
            frames.append(f"data: {json.dumps(event)}\n\n".encode())
    return frames


def ndjson_lines(*objects: Any) -> list[bytes]:
    return [json.dumps(o).encode() + b"\n" for o in objects]


def fixture_chunks(name: str, size: int = 7) -> list[bytes]:
    """A fixture transcript cut into small chunks, so that frames straddle reads."""
    data = (FIXTURES / name).read_bytes()
    return [data[i : i + size] for i in range(0, len(data), size)]


ScriptFunction = Callable[[Received], Scripted]


class WireServer:
    """Answers every POST from a script; ``url`` is the server root."""

    def __init__(self, script: Sequence[Scripted] | ScriptFunction) -> None:
        self._script = script
        self.requests: list[Received] = []
        self.disconnected = anyio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def last(self) -> Received:
        return self.requests[-1]

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        # handler_cancellation: a client that goes away cancels the handler, which records it.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = getattr(server, "sockets", [])[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _next(self, received: Received) -> Scripted:
        if callable(self._script):
            return self._script(received)
        return self._script[min(len(self.requests) - 1, len(self._script) - 1)]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        received = Received(request.path, dict(request.query), dict(request.headers), body)
        self.requests.append(received)
        answer = self._next(received)
        response = web.StreamResponse(status=answer.status, headers=dict(answer.headers))
        response.content_type = answer.content_type
        try:
            await response.prepare(request)
            for chunk in answer.chunks:
                await response.write(chunk)
            if answer.hold:
                await anyio.Event().wait()  # until the client disconnects and aiohttp cancels us
        except BaseException:
            self.disconnected.set()
            raise
        return response


# -- servers that speak a wire format ---------------------------------------------------------------

WireFormat = Literal["openai", "anthropic", "gemini", "ollama"]
ReplyText = Callable[[Received], str]


def _words(text: str) -> int:
    return len(text.split())


def _prompt_words(received: Received) -> int:
    body = received.body if isinstance(received.body, dict) else {}
    texts = [str(m.get("content", "")) for m in body.get("messages", [])]
    texts += [str(p.get("text", "")) for c in body.get("contents", []) for p in c.get("parts", [])]
    texts += [str(p.get("text", "")) for p in (body.get("systemInstruction") or {}).get("parts", [])]
    texts.append(str(body.get("system", "")))
    return sum(_words(t) for t in texts)


def speaks(wire: WireFormat, reply: ReplyText = lambda received: "Hello from the fake model") -> ScriptFunction:
    """A script answering every request in ``wire``'s format, JSON or streamed as the request asks.

    Usage counts words: the prompt's for input, the reply's for output. Streams send one word per frame.
    """

    def answer(received: Received) -> Scripted:
        body = received.body if isinstance(received.body, dict) else {}
        text = reply(received)
        pieces = [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]
        usage = (_prompt_words(received), _words(text))
        streaming = bool(body.get("stream")) or received.path.endswith(":streamGenerateContent")
        n = int(body.get("n") or (body.get("generationConfig") or {}).get("candidateCount") or 1)
        return _SPEAKERS[wire](pieces, usage, streaming, n)

    return answer


def _openai(pieces: list[str], usage: tuple[int, int], streaming: bool, n: int) -> Scripted:
    counts = {"prompt_tokens": usage[0], "completion_tokens": usage[1] * n, "total_tokens": usage[0] + usage[1] * n}
    if not streaming:
        message = {"role": "assistant", "content": "".join(pieces)}
        choices = [{"index": i, "message": message, "finish_reason": "stop"} for i in range(n)]
        return json_answer({"object": "chat.completion", "choices": choices, "usage": counts})
    frames: list[Any] = []
    for i in range(n):
        frames += [{"choices": [{"index": i, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
        frames.append({"choices": [{"index": i, "delta": {}, "finish_reason": "stop"}]})
    frames.append({"choices": [], "usage": counts})
    return sse_answer([*sse_events(*frames), b"data: [DONE]\n\n"])


def _anthropic(pieces: list[str], usage: tuple[int, int], streaming: bool, n: int) -> Scripted:
    counts = {"input_tokens": usage[0], "output_tokens": usage[1]}
    if not streaming:
        content = [{"type": "text", "text": "".join(pieces)}]
        return json_answer({"type": "message", "content": content, "stop_reason": "end_turn", "usage": counts})
    start = {"type": "message_start", "message": {"usage": {"input_tokens": usage[0], "output_tokens": 1}}}
    events: list[Any] = [("message_start", start), ("ping", {"type": "ping"})]
    events += [
        ("content_block_delta", {"type": "content_block_delta", "delta": {"type": "text_delta", "text": p}})
        for p in pieces
    ]
    events += [
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": counts}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return sse_answer(sse_events(*events))


def _gemini(pieces: list[str], usage: tuple[int, int], streaming: bool, n: int) -> Scripted:
    meta = {"promptTokenCount": usage[0], "candidatesTokenCount": usage[1] * n}
    if not streaming:
        content = {"role": "model", "parts": [{"text": "".join(pieces)}]}
        candidates = [{"content": content, "finishReason": "STOP", "index": i} for i in range(n)]
        return json_answer({"candidates": candidates, "usageMetadata": meta})
    frames: list[Any] = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": p}]}, "index": 0}]} for p in pieces[:-1]
    ]
    last = {"content": {"role": "model", "parts": [{"text": pieces[-1]}]}, "finishReason": "STOP", "index": 0}
    frames.append({"candidates": [last], "usageMetadata": meta})
    return sse_answer(sse_events(*frames))


def _ollama(pieces: list[str], usage: tuple[int, int], streaming: bool, n: int) -> Scripted:
    final = {"done": True, "done_reason": "stop", "prompt_eval_count": usage[0], "eval_count": usage[1]}
    if not streaming:
        return json_answer({"message": {"role": "assistant", "content": "".join(pieces)}, **final})
    lines: list[Any] = [{"message": {"role": "assistant", "content": p}, "done": False} for p in pieces]
    lines.append({"message": {"role": "assistant", "content": ""}, **final})
    return ndjson_answer(ndjson_lines(*lines))


_SPEAKERS: dict[WireFormat, Callable[[list[str], tuple[int, int], bool, int], Scripted]] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "gemini": _gemini,
    "ollama": _ollama,
}


STATUS_ERRORS: list[tuple[int, type[ClientError]]] = [
    (400, BadRequestError),
    (401, AuthenticationError),
    (403, AuthenticationError),
    (404, BadRequestError),
    (422, BadRequestError),
    (429, RateLimitError),
    (500, ProviderUnavailable),
    (503, ProviderUnavailable),
    (529, ProviderUnavailable),
]
"""Each error status a provider may answer and the error class it becomes (529: Anthropic's "overloaded")."""
