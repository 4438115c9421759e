"""An upstream written at the socket level, for the faults an HTTP framework will not produce.

Each connection follows the next step of a script: reset the connection (TCP RST) before
answering, hang until the test ends, answer a complete ``chat.completion``, or stream events and
then reset, close, or finish with ``[DONE]``.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from anyio.abc import SocketAttribute, SocketStream

Action = Literal["reset", "hang", "json", "stream"]
StreamEnd = Literal["done", "reset", "close"]

COMPLETION = {
    "id": "chatcmpl-raw",
    "object": "chat.completion",
    "created": 1,
    "model": "raw-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "raw-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def sse(payload: Any) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {text}\n\n".encode()


ANSWER_EVENTS = (
    sse(chunk({"role": "assistant", "content": ""})),
    sse(chunk({"content": "Par"})),
    sse(chunk({"content": "is."})),
    sse(chunk({}, "stop")),
)


@dataclass(frozen=True)
class Step:
    """What one connection gets: ``events`` are written for ``"stream"``, then the stream ``end``s."""

    action: Action
    events: tuple[bytes, ...] = ANSWER_EVENTS
    end: StreamEnd = "done"


@dataclass
class RawUpstream:
    """Serves ``script[i]`` to the i-th connection (the last step repeats); records each request body."""

    script: list[Step]
    bodies: list[bytes] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _serve(self, stream: SocketStream) -> None:
        async with stream:
            body = await _read_request(stream)
            if body is None:
                return
            self.bodies.append(body)
            step = self.script[min(len(self.bodies) - 1, len(self.script) - 1)]
            if step.action == "reset":
                await _reset(stream)
            elif step.action == "hang":
                await anyio.sleep_forever()
            elif step.action == "json":
                payload = json.dumps(COMPLETION).encode()
                await stream.send(_head("application/json", len(payload)) + payload)
            else:
                await stream.send(_head("text/event-stream", None))
                for event in step.events:
                    await stream.send(event)
                if step.end == "done":
                    await stream.send(b"data: [DONE]\n\n")
                elif step.end == "reset":
                    await _reset(stream)


@asynccontextmanager
async def raw_upstream(*script: Step) -> AsyncIterator[RawUpstream]:
    upstream = RawUpstream(list(script))
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    upstream.port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, upstream._serve)
        try:
            yield upstream
        finally:
            tg.cancel_scope.cancel()


def _head(content_type: str, length: int | None) -> bytes:
    size = f"content-length: {length}\r\n" if length is not None else ""
    return f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n{size}connection: close\r\n\r\n".encode()


async def _reset(stream: SocketStream) -> None:
    """Close with a TCP RST (SO_LINGER 0) instead of an orderly FIN: a connection reset by the peer."""
    raw = stream.extra(SocketAttribute.raw_socket)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


async def _read_request(stream: SocketStream) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return None
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        body += await stream.receive()
    return body
