"""Responses whose work runs while the client is connected: a disconnect cancels the work at once.

:class:`Exchange` wraps the ASGI ``send`` of one response: a complete JSON answer, or a
server-sent event stream (``data:`` lines and ``:`` comments). :class:`DeferredResponse` runs the
work beside a task that watches for ``http.disconnect``; any error becomes an error in the
endpoint's shape (OpenAI's unless the response is given another), as a JSON response before the
stream starts and as the stream's closing error event after (OpenAI: ``data: {"error": ...}`` and
``data: [DONE]``; Anthropic: ``event: error``), so that a stream never just stops.
"""

from __future__ import annotations as _annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import structlog
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ._errors import ApiError, Scrubber, api_error_for, log_error

__all__ = ("DeferredResponse", "ErrorShape", "Exchange")

log = structlog.get_logger("optillm")

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


ErrorShape = Callable[[ApiError], ApiError]
"""Turns an error into the API's own shape and status (OpenAI's errors are :class:`ApiError` as they are)."""


class Exchange:
    """The response side of one request, written once as JSON or as an event stream.

    ``shape`` puts every error it fails with into the endpoint's API shape (the default: OpenAI's).
    """

    def __init__(self, send: Send, shape: ErrorShape | None = None) -> None:
        self._client_send = send
        self._shape = shape
        self.started = False
        self.finished = False
        self.client_gone = False
        self.closing: Callable[[ApiError], bytes] | None = None
        """The bytes that end this stream with an error, where the format's stream needs per-response state
        (the Responses API's ``response.failed``); ``error.stream_end()`` otherwise."""

    async def _send(self, message: Message) -> None:
        try:
            await self._client_send(message)
        except OSError:
            self.client_gone = True  # the client went away: nothing more can reach it
            raise

    async def json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        await self.raw(status, body, {"content-type": "application/json", **(headers or {})})

    async def raw(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw_headers.append((b"content-length", str(len(body)).encode()))
        await self._send({"type": "http.response.start", "status": status, "headers": raw_headers})
        self.started = True
        await self._send({"type": "http.response.body", "body": body, "more_body": False})
        self.finished = True

    async def start_stream(self, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        await self._send({"type": "http.response.start", "status": 200, "headers": headers or _SSE_HEADERS})
        self.started = True

    async def write(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def data(self, payload: Any) -> None:
        await self.write(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")

    async def event(self, name: str, payload: Any) -> None:
        """A named event (``event:`` and ``data:`` lines), as Anthropic's streams send them."""
        data = json.dumps(payload, separators=(",", ":"))
        await self.write(f"event: {name}\ndata: {data}\n\n".encode())

    async def comment(self, text: str) -> None:
        line = " ".join(text.split())
        await self.write(f": {line}\n\n".encode())

    async def done(self) -> None:
        await self.write(b"data: [DONE]\n\n")

    async def end(self) -> None:
        if not self.finished:
            self.finished = True
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def fail(self, error: ApiError) -> None:
        """The error as a JSON response; once a stream has begun, as its closing error event(s)."""
        if self._shape is not None:
            error = self._shape(error)
        if not self.started:
            await self.json(error.status, error.payload(), error.headers())
        elif not self.finished:
            await self.write(self.closing(error) if self.closing is not None else error.stream_end())
            await self.end()


Work = Callable[[Exchange], Awaitable[None]]


class DeferredResponse(Response):
    """Runs ``work`` when the response is sent, cancelling it if the client disconnects first.

    ``shape`` gives its errors the endpoint's API shape (see :class:`Exchange`).
    """

    def __init__(self, work: Work, scrub: Scrubber, *, shape: ErrorShape | None = None, **log_context: Any) -> None:
        super().__init__()
        self._work = work
        self._scrub = scrub
        self._shape = shape
        self._log_context = log_context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = Exchange(send, self._shape)
        ended = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
            try:
                await self._work(exchange)
                await exchange.end()
            except Exception as exc:
                # A write to a client that went away ends here; the disconnect watcher ends the rest.
                # Any other error (an OSError from the work included) is told to the client.
                if not exchange.client_gone:
                    error = api_error_for(exc, self._scrub)
                    log_error(error, exc, self._scrub, **self._log_context)
                    await _fail_quietly(exchange, error)
            ended = True
            tg.cancel_scope.cancel()
        if not ended:
            log.info("client disconnected; its run was cancelled", **self._log_context)


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


async def _fail_quietly(exchange: Exchange, error: ApiError) -> None:
    with contextlib.suppress(OSError):
        await exchange.fail(error)
