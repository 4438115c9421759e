"""Requests without a strategy: forwarded byte for byte to the upstream server, or served by the model client.

Forwarding keeps everything the upstream supports (tools and tool_calls, ``n``, logprobs,
streaming chunks) because the proxy never rebuilds the request or the answer.
"""

from __future__ import annotations as _annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from optillm_core import (
    BadRequestError,
    ClientError,
    GenerationSettings,
    InvalidConfiguration,
    ModelClient,
    OutputTextDelta,
    Prompt,
    ProviderTimeout,
    ProviderUnavailable,
    ReasoningDelta,
    ResponseEvent,
    TokenUsage,
    check_allow_model_requests,
    error_for_status,
)

from ._conversation import client_prompt
from ._errors import ApiError, Scrubber, api_error_for
from ._streaming import Exchange
from ._wire import ChatRequest, ResponseHeader, chunk, completion

__all__ = ("Upstream", "fetch_models", "forward", "serve_with_client")

_OPTILLM_FIELDS = ("optillm_approach", "optillm_config")
_NO_CACHE = (b"cache-control", b"no-cache")


@dataclass(frozen=True)
class Upstream:
    """An OpenAI-compatible server that receives pass-through requests (``base_url`` ends in ``/v1``)."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise InvalidConfiguration(
                f"upstream base_url must start with http:// or https:// (got {self.base_url!r}), "
                "for example https://api.openai.com/v1"
            )
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers


def outgoing_body(raw: bytes, body: dict[str, Any]) -> bytes:
    """The client's body as it came, minus optillm's own fields (upstream servers may refuse unknown fields)."""
    if not any(name in body for name in _OPTILLM_FIELDS):
        return raw
    return json.dumps({k: v for k, v in body.items() if k not in _OPTILLM_FIELDS}).encode()


async def forward(
    exchange: Exchange,
    pool: httpx.AsyncClient,
    upstream: Upstream,
    body: bytes,
    *,
    stream: bool,
    scrub: Scrubber,
    http_timeout: httpx.Timeout,
) -> None:
    """Send the request upstream and relay its answer unchanged; upstream failures become mapped errors."""
    check_allow_model_requests(upstream.base_url)
    url, headers = upstream.url("chat/completions"), upstream.headers()
    request = pool.build_request("POST", url, content=body, headers=headers, timeout=http_timeout)
    with _transport_errors():
        response = await pool.send(request, stream=stream)
    try:
        if response.status_code >= 400:
            with _transport_errors():
                await response.aread()
            raise upstream_error(response, scrub)
        content_type = response.headers.get("content-type", "application/json")
        if not stream:
            await exchange.raw(response.status_code, response.content, {"content-type": content_type})
            return
        await exchange.start_stream([(b"content-type", content_type.encode("latin-1")), _NO_CACHE])
        with _transport_errors():
            async for piece in response.aiter_bytes():
                await exchange.write(piece)
    finally:
        await response.aclose()


async def fetch_models(
    pool: httpx.AsyncClient, upstream: Upstream, scrub: Scrubber, http_timeout: httpx.Timeout
) -> list[dict[str, Any]]:
    """The upstream's ``GET /models`` list."""
    check_allow_model_requests(upstream.base_url)
    with _transport_errors():
        response = await pool.get(upstream.url("models"), headers=upstream.headers(), timeout=http_timeout)
    if response.status_code >= 400:
        raise upstream_error(response, scrub)
    try:
        data = response.json()["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(502, "the upstream's model list is malformed", kind="upstream_error") from exc
    return [m for m in data if isinstance(m, dict)]


def upstream_error(response: httpx.Response, scrub: Scrubber) -> ApiError:
    """The proxy's answer to an upstream error status: its own 4xx kept, failures mapped to 429/502/503/504."""
    fields = _error_fields(response)
    message = scrub(str(fields.get("message") or response.text[:500] or f"HTTP {response.status_code}"))
    status = response.status_code
    retry_after = _retry_after(response.headers.get("retry-after"))
    if status == 504:
        error: ClientError = ProviderTimeout(message, status_code=status)
    else:
        error = error_for_status(status, message, retry_after=retry_after)
    if isinstance(error, BadRequestError):
        return ApiError(
            status,
            message,
            kind=str(fields.get("type") or "invalid_request_error"),
            param=_optional_str(fields.get("param")),
            code=_optional_str(fields.get("code")),
        )
    return api_error_for(error, scrub)


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


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) else None


@contextmanager
def _transport_errors() -> Iterator[None]:
    """Map connection failures and timeouts of the forwarding client to the core error tree."""
    try:
        yield
    except httpx.TransportError as exc:
        # the aiohttp transport reports any connection error as a ConnectTimeout: trust its cause first
        cause = exc.__cause__
        timed_out = isinstance(cause, TimeoutError) if cause is not None else isinstance(exc, httpx.TimeoutException)
        if timed_out:
            raise ProviderTimeout(f"the upstream server did not answer in time ({type(exc).__name__})") from exc
        raise ProviderUnavailable(f"could not reach the upstream server ({type(cause or exc).__name__})") from exc


async def serve_with_client(
    exchange: Exchange, client: ModelClient, request: ChatRequest, header: ResponseHeader
) -> None:
    """Pass-through without an upstream server: the conversation goes turn by turn through ``client``."""
    request.reject_tools("this server has no OpenAI-compatible upstream to pass them to")
    prompt = client_prompt(request.messages)
    settings = request.settings().with_(n=request.n)
    if not request.stream:
        result = await client.complete(prompt, settings)
        choices = [(text, result.finish_reason(i)) for i, text in enumerate(result.texts)]
        await exchange.json(200, completion(header, choices, result.usage))
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

    async def relay(event: ResponseEvent) -> None:
        nonlocal usage
        if isinstance(event, OutputTextDelta | ReasoningDelta):
            # reasoning clients read thinking from reasoning_content, never from content
            field = "content" if isinstance(event, OutputTextDelta) else "reasoning_content"
            delta = {field: event.delta}
            await exchange.data(chunk(header, index=event.index, delta=delta, with_usage_field=usage_field))
            return
        usage = event.usage or TokenUsage()
        for index in range(request.n):
            reason = (event.finish_reasons[index] if index < len(event.finish_reasons) else None) or "stop"
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
