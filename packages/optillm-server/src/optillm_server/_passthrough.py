"""Requests without a strategy: forwarded byte for byte to the upstream server, or served by the model client.

Forwarding keeps everything the upstream supports (tools and tool_calls, ``n``, logprobs,
streaming chunks) because the proxy never rebuilds the request or the answer.
"""

from __future__ import annotations as _annotations

import json
import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from optillm_core import (
    BadRequestError,
    ClientError,
    GenerationSettings,
    InvalidConfiguration,
    ModelClient,
    OptillmError,
    OutputTextDelta,
    Prompt,
    ProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    ReasoningDelta,
    ResponseEvent,
    TokenUsage,
    ToolCallDelta,
    check_allow_model_requests,
    error_for_status,
)
from optillm_router import (
    INITIAL_RETRY_DELAY,
    MAX_RETRIES,
    MAX_RETRY_AFTER,
    MAX_RETRY_DELAY,
    AnyioClock,
    Clock,
    client_error,
    could_not_connect,
    parse_retry_after,
    retry_allowed,
    retry_delay,
)

from ._conversation import client_prompt
from ._errors import ApiError, Scrubber, api_error_for
from ._sse import EventKind, EventSplitter, event_kind
from ._streaming import Exchange
from ._tools import ToolCallPieces, choice_finish_reason
from ._wire import ChatRequest, ResponseHeader, chunk, completion

__all__ = (
    "DEFAULT_MAX_RETRIES",
    "Forwarding",
    "Reach",
    "Upstream",
    "fetch_models",
    "forward",
    "serve_with_client",
)

log = structlog.get_logger("optillm")

DEFAULT_MAX_RETRIES = MAX_RETRIES
"""Retries of a failed pass-through call by default: the router's (``optillm_router.MAX_RETRIES``), so that a
forwarded request survives the faults a strategy's calls survive."""
UPSTREAM = "the upstream server"
"""How messages about forwarding name the upstream."""

_OPTILLM_FIELDS = ("optillm_approach", "optillm_config")
_NO_CACHE = (b"cache-control", b"no-cache")


@dataclass(frozen=True)
class Upstream:
    """An OpenAI-compatible server that receives pass-through requests (``base_url`` ends in ``/v1``).

    A failed call is retried as the router retries its own, with its policy functions
    (``optillm_router.retry_allowed``, ``retry_delay``): up to ``max_retries`` more attempts (the
    router's 10 by default; only ``optillm_router.UNREACHED_RETRIES`` while the upstream has never
    answered and refuses connections), waiting the upstream's ``Retry-After`` when it gives one (up
    to ``max_retry_after``; a longer one fails the call at once) and an exponential backoff from
    ``initial_retry_delay`` to ``max_retry_delay`` otherwise.
    """

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    max_retries: int = DEFAULT_MAX_RETRIES
    initial_retry_delay: float = INITIAL_RETRY_DELAY
    max_retry_delay: float = MAX_RETRY_DELAY
    max_retry_after: float = MAX_RETRY_AFTER

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise InvalidConfiguration(
                f"upstream base_url must start with http:// or https:// (got {self.base_url!r}), "
                "for example https://api.openai.com/v1"
            )
        if self.max_retries < 0:
            raise InvalidConfiguration(f"upstream max_retries must be 0 or more (got {self.max_retries})")
        for name in ("initial_retry_delay", "max_retry_delay", "max_retry_after"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidConfiguration(f"upstream {name} must be a finite number of seconds >= 0 (got {value!r})")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    def retry_in(
        self, error: ClientError, attempt: int, rng: random.Random | None = None, *, unreached: bool = False
    ) -> float | None:
        """Seconds to wait before retrying a call that failed with ``error`` on ``attempt`` (from 0), or ``None``.

        ``unreached``: the upstream has never answered and refused this connection (see :class:`Reach`).
        A ``Retry-After`` above ``max_retry_after`` (a daily quota) is told to the client at once.
        """
        allowed = retry_allowed(
            error, attempt, max_retries=self.max_retries, max_retry_after=self.max_retry_after, unreached=unreached
        )
        if not allowed:
            return None
        return retry_delay(
            attempt,
            error.retry_after,
            rng,
            initial=self.initial_retry_delay,
            maximum=self.max_retry_delay,
            max_retry_after=self.max_retry_after,
        )


def outgoing_body(raw: bytes, body: dict[str, Any]) -> bytes:
    """The client's body as it came, minus optillm's own fields (upstream servers may refuse unknown fields)."""
    if not any(name in body for name in _OPTILLM_FIELDS):
        return raw
    return json.dumps({k: v for k, v in body.items() if k not in _OPTILLM_FIELDS}).encode()


@dataclass
class Reach:
    """Whether the upstream has ever answered (with any status, or at least accepted a connection).

    Until it has, a refused connection is likelier a wrong address than a restart, and is retried
    only ``optillm_router.UNREACHED_RETRIES`` times, as the router does for a route that never answered.
    """

    reached: bool = False

    def note(self, error: BaseException | None) -> None:
        """Record an attempt's outcome: ``None`` (it succeeded) or the error it failed with."""
        if not self.reached and (error is None or not could_not_connect(error)):
            self.reached = True

    def unreached(self, error: BaseException) -> bool:
        """Whether ``error`` is a refused connection to an upstream that has never answered."""
        return not self.reached and could_not_connect(error)


@dataclass(frozen=True)
class Forwarding:
    """How pass-through requests reach the upstream: its pool, timeouts, the clock retries wait on, and
    whether the upstream has answered before (shared by every request of a server)."""

    pool: httpx.AsyncClient
    upstream: Upstream
    scrub: Scrubber
    http_timeout: httpx.Timeout
    clock: Clock = field(default_factory=AnyioClock)
    rng: random.Random | None = None
    reach: Reach = field(default_factory=Reach)


async def forward(exchange: Exchange, forwarding: Forwarding, body: bytes, *, stream: bool) -> None:
    """Send the request upstream and relay its answer unchanged, retrying transient failures.

    Every attempt sends the same bytes. Nothing reaches the client before an attempt has produced
    an answer (a complete JSON body, or a stream's first event that carries part of the answer),
    so until then any transient failure is retried; after that, a broken stream ends with an
    error event and ``[DONE]``.
    """
    upstream, reach = forwarding.upstream, forwarding.reach
    check_allow_model_requests(upstream.base_url)
    attempt = 0
    while True:
        try:
            await _forward_once(exchange, forwarding, body, stream=stream)
            reach.note(None)
            return
        except ClientError as exc:
            unreached = reach.unreached(exc)
            reach.note(exc)
            delay = None if exchange.started else upstream.retry_in(exc, attempt, forwarding.rng, unreached=unreached)
            if delay is None:
                if isinstance(exc, _Refused):
                    raise exc.answer from None
                raise
            log.warning(
                "upstream call failed; retrying",
                upstream=upstream.base_url,
                attempt=attempt,
                error_type=type(exc).__name__,
                status_code=exc.status_code,
                retry_in=round(delay, 3),
                detail=forwarding.scrub(str(exc)),
            )
        await forwarding.clock.sleep(delay)
        attempt += 1


async def _forward_once(exchange: Exchange, forwarding: Forwarding, body: bytes, *, stream: bool) -> None:
    pool, upstream = forwarding.pool, forwarding.upstream
    url, headers = upstream.url("chat/completions"), upstream.headers()
    request = pool.build_request("POST", url, content=body, headers=headers, timeout=forwarding.http_timeout)
    with _transport_errors():
        response = await pool.send(request, stream=True)
    try:
        content_type = response.headers.get("content-type", "application/json")
        if response.status_code >= 400:
            with _transport_errors():
                await response.aread()
            raise _refusal(response, forwarding.scrub)
        if stream and content_type.startswith("text/event-stream"):
            await _relay_events(exchange, response, content_type)
            return
        with _transport_errors():
            content = await response.aread()
        _check_answer(content)
        await exchange.raw(response.status_code, content, {"content-type": content_type})
    finally:
        await response.aclose()


class _Refused(ClientError):
    """An upstream error status, with the answer the client gets if it is not retried (the upstream's own fields)."""

    def __init__(self, error: ClientError, answer: ApiError) -> None:
        super().__init__(str(error), status_code=error.status_code, retry_after=error.retry_after)
        self.answer = answer


def _refusal(response: httpx.Response, scrub: Scrubber) -> _Refused:
    fields = _error_fields(response)
    message = scrub(str(fields.get("message") or response.text[:500] or f"HTTP {response.status_code}"))
    status = response.status_code
    retry_after = parse_retry_after(response.headers, response.content)
    if status == 504:
        error: ClientError = ProviderTimeout(message, status_code=status)
    else:
        error = error_for_status(status, message, retry_after=retry_after)
    if isinstance(error, BadRequestError):
        answer = ApiError(
            status,
            message,
            kind=str(fields.get("type") or "invalid_request_error"),
            param=_optional_str(fields.get("param")),
            code=_optional_str(fields.get("code")),
        )
    else:
        answer = api_error_for(error, scrub)
    return _Refused(error, answer)


def _check_answer(content: bytes) -> None:
    """A 200 must hold a ``chat.completion``: a body cut short or not JSON is a (retryable) :class:`ProtocolError`."""
    try:
        payload = json.loads(content)
    except ValueError:
        raise ProtocolError(
            f"the upstream's answer is not valid JSON ({len(content)} bytes; cut short or malformed)"
        ) from None
    if not isinstance(payload, dict):
        raise ProtocolError("the upstream's answer is not a JSON object")
    if "error" in payload and not payload.get("choices"):
        raise _payload_error(payload["error"])
    if not isinstance(payload.get("choices"), list):
        raise ProtocolError("the upstream's answer has no 'choices' list")


def _payload_error(error: Any) -> ClientError:
    """An ``{"error": …}`` sent with status 200 (in a body or a stream event), as the error it reports."""
    fields = error if isinstance(error, dict) else {"message": error}
    message = str(fields.get("message") or "no message")
    code = fields.get("code")
    if isinstance(code, int) and 400 <= code <= 599:
        return error_for_status(code, f"the upstream answered with an error: {message}")
    return ProviderUnavailable(f"the upstream answered with an error: {message}")


async def _relay_events(exchange: Exchange, response: httpx.Response, content_type: str) -> None:
    relay = _EventRelay(exchange, content_type)
    splitter = EventSplitter()
    try:
        with _transport_errors():
            async for piece in response.aiter_bytes():
                for event in splitter.feed(piece):
                    if await relay.event(event):
                        return
        rest = splitter.rest()
        if rest.strip() and await relay.event(rest):
            return
        raise relay.cut_short()
    except ClientError:
        if not relay.error_sent:
            raise
        await exchange.done()  # the upstream's own error event has told the client what went wrong


class _EventRelay:
    """Holds events back until one carries part of the answer, then forwards each complete event as it came."""

    def __init__(self, exchange: Exchange, content_type: str) -> None:
        self._exchange = exchange
        self._headers = [(b"content-type", content_type.encode("latin-1")), _NO_CACHE]
        self._held: list[bytes] = []
        self.forwarded = 0
        self.error_sent = False

    async def event(self, event: bytes) -> bool:
        """Relay one event; ``True`` once the stream is complete (``[DONE]``)."""
        kind, payload = event_kind(event)
        if kind is EventKind.MALFORMED:
            raise ProtocolError(f"the upstream sent a stream event that is not JSON after {self.forwarded} event(s)")
        if not self._exchange.started:
            if kind is EventKind.ERROR:
                raise _payload_error(payload["error"])
            if kind in (EventKind.COMMENT, EventKind.PREAMBLE):
                self._held.append(event)
                return False
            await self._exchange.start_stream(self._headers)
            event, self._held = b"".join(self._held) + event, []
        await self._exchange.write(event)
        self.forwarded += 1
        self.error_sent = self.error_sent or kind is EventKind.ERROR
        return kind is EventKind.DONE

    def cut_short(self) -> ClientError:
        if not self._exchange.started:
            return ProtocolError("the upstream's stream ended before any part of the answer")
        return ProtocolError(
            f"the upstream's stream broke off after {self.forwarded} event(s), before [DONE]: the answer is incomplete"
        )


async def fetch_models(
    pool: httpx.AsyncClient, upstream: Upstream, scrub: Scrubber, http_timeout: httpx.Timeout
) -> list[dict[str, Any]]:
    """The upstream's ``GET /models`` list."""
    check_allow_model_requests(upstream.base_url)
    with _transport_errors():
        response = await pool.get(upstream.url("models"), headers=upstream.headers(), timeout=http_timeout)
    if response.status_code >= 400:
        raise _refusal(response, scrub).answer
    try:
        data = response.json()["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(502, "the upstream's model list is malformed", kind="upstream_error") from exc
    return [m for m in data if isinstance(m, dict)]


def _error_fields(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return error
    return {"message": error} if isinstance(error, str) else {}


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


@contextmanager
def _transport_errors() -> Iterator[None]:
    """Map transport failures of the forwarding client to the core error tree, with the router's one
    table (``optillm_router.client_error``): timeouts, refused or dropped connections, bodies cut short."""
    try:
        yield
    except OptillmError:
        raise
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        error = client_error(exc, UPSTREAM)
        if error is None:
            raise
        raise error from exc


async def serve_with_client(
    exchange: Exchange, client: ModelClient, request: ChatRequest, header: ResponseHeader
) -> None:
    """Pass-through without an upstream server: the conversation goes turn by turn through ``client``.

    Tools, tool calls and tool results go to the model as they are, and its tool calls come back
    in ``message.tool_calls`` (or ``delta.tool_calls`` pieces when streamed), choice by choice.
    """
    request.reject_logprobs("this server has no OpenAI-compatible upstream to pass them to")
    prompt = client_prompt(request.messages)
    settings = request.settings().with_(n=request.n)
    if not request.stream:
        result = await client.complete(prompt, settings)
        choices = [(text, result.finish_reason(i)) for i, text in enumerate(result.texts)]
        calls = [result.calls_of(i) for i in range(len(result.texts))]
        await exchange.json(200, completion(header, choices, result.usage, list(result.thinking), calls))
        return
    await _stream_with_client(exchange, client, prompt, settings, request, header)


async def _stream_with_client(
    exchange: Exchange,
    client: ModelClient,
    prompt: Prompt,
    settings: GenerationSettings,
    request: ChatRequest,
    header: ResponseHeader,
) -> None:
    usage_field = request.include_usage
    usage = TokenUsage()
    pieces = ToolCallPieces()

    async def relay(event: ResponseEvent) -> None:
        nonlocal usage
        if isinstance(event, OutputTextDelta | ReasoningDelta):
            # reasoning clients read thinking from reasoning_content, never from content
            field = "content" if isinstance(event, OutputTextDelta) else "reasoning_content"
            delta = {field: event.delta}
            await exchange.data(chunk(header, index=event.index, delta=delta, with_usage_field=usage_field))
            return
        if isinstance(event, ToolCallDelta):
            piece = pieces.delta(event)
            if piece is not None:
                await exchange.data(chunk(header, index=event.index, delta=piece, with_usage_field=usage_field))
            return
        usage = event.usage or TokenUsage()
        for index in range(request.n):
            given = event.finish_reasons[index] if index < len(event.finish_reasons) else None
            reason = choice_finish_reason(given, pieces.called(index))
            await exchange.data(chunk(header, index=index, finish_reason=reason, with_usage_field=usage_field))

    async with client.stream(prompt, settings) as events:
        # waiting for the first event lets a failure before any output keep its HTTP status (429, 502 …)
        first = await anext(aiter(events), None)
        await exchange.start_stream()
        for index in range(request.n):
            role = {"role": "assistant", "content": ""}
            await exchange.data(chunk(header, index=index, delta=role, with_usage_field=usage_field))
        if first is not None:
            await relay(first)
        async for event in events:
            await relay(event)
    if request.include_usage:
        await exchange.data(chunk(header, usage=usage))
    await exchange.done()
