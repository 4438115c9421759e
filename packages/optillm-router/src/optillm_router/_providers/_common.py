"""What every HTTP provider client shares: capabilities, setting checks, requests and error mapping."""

from __future__ import annotations as _annotations

import json
from abc import abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from optillm_core import (
    BadRequestError,
    ClientError,
    FinishReason,
    GenerationSettings,
    ModelClient,
    ProtocolError,
    check_allow_model_requests,
)

from .._http import HttpPool, error_from_response, request_timeout, transport_errors

__all__ = ("Capabilities", "HttpModelClient", "ProviderInfo", "check_settings", "json_object", "map_finish")


T = TypeVar("T")

LOGPROB_FIELDS = frozenset({"logprobs", "top_logprobs", "responseLogprobs"})


@dataclass(frozen=True)
class Capabilities:
    """What a provider can honour of :class:`~optillm_core.GenerationSettings`.

    ``native_n``: one request returns ``n`` choices; ``temperature_max``: the highest temperature
    accepted; ``max_stop``: most stop sequences per request (``None``: no limit known);
    ``logprobs`` and ``seed``: whether those are supported.
    """

    native_n: bool
    temperature_max: float
    max_stop: int | None
    logprobs: bool
    seed: bool


@dataclass(frozen=True)
class ProviderInfo:
    """A provider's defaults: where it lives, which environment variables hold its key, what it can do."""

    name: str
    default_base_url: str | None
    api_key_env: tuple[str, ...]
    requires_key: bool
    capabilities: Capabilities


def check_settings(provider: str, capabilities: Capabilities, settings: GenerationSettings) -> None:
    """Reject a setting the provider cannot honour, naming it and what to change."""
    if settings.n > 1 and not capabilities.native_n:
        raise BadRequestError(
            f"{provider} cannot return n={settings.n} choices in one request; "
            "call ModelClient.complete/stream, which fan n out into single requests",
            provider=provider,
        )
    if settings.temperature is not None and settings.temperature > capabilities.temperature_max:
        raise BadRequestError(
            f"{provider} accepts temperature up to {capabilities.temperature_max:g}, "
            f"got {settings.temperature:g}; lower it",
            provider=provider,
        )
    if settings.stop and capabilities.max_stop is not None and len(settings.stop) > capabilities.max_stop:
        raise BadRequestError(
            f"{provider} accepts at most {capabilities.max_stop} stop sequences, got {len(settings.stop)}; drop some",
            provider=provider,
        )
    asked = sorted(LOGPROB_FIELDS.intersection(settings.extra))
    if asked and not capabilities.logprobs:
        raise BadRequestError(
            f"{provider} does not return log probabilities; remove {asked} from extra", provider=provider
        )
    if settings.seed is not None and not capabilities.seed:
        raise BadRequestError(
            f"{provider} has no seed setting, got seed={settings.seed}; leave seed unset for this provider",
            provider=provider,
        )


def json_object(provider: str, body: bytes | str) -> dict[str, Any]:
    """Parse a JSON object body, or raise :class:`ProtocolError`."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{provider} sent malformed JSON: {exc}", provider=provider) from exc
    if not isinstance(payload, dict):
        raise ProtocolError(f"{provider} sent JSON that is not an object: {body[:200]!r}", provider=provider)
    return payload


def map_finish(table: Mapping[str, FinishReason], reason: object) -> FinishReason | None:
    """A provider's finish reason in optillm's vocabulary (``"other"`` for one not in ``table``)."""
    if reason is None or reason == "":
        return None
    return table.get(str(reason), "other")


class HttpModelClient(ModelClient):
    """A :class:`ModelClient` that talks to one provider over HTTP through a shared :class:`HttpPool`.

    It never retries: the router decides what to do with each :class:`ClientError`.
    """

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        base_url: str,
        api_key: str | None,
        http: HttpPool,
        capabilities: Capabilities,
        timeout: float,
        connect_timeout: float,
    ) -> None:
        self.provider = provider
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.capabilities = capabilities
        self._api_key = api_key
        self._http = http
        self._timeout = request_timeout(timeout, connect_timeout)
        self._headers = self.auth_headers(api_key)
        self._urls: dict[str, URL] = {}

    @abstractmethod
    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """The headers sent with every request (authentication, versions)."""

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def supports_native_n(self) -> bool:
        return self.capabilities.native_n

    def __repr__(self) -> str:
        return f"{type(self).__name__}(provider={self.provider!r}, model={self.model!r}, base_url={self.base_url!r})"

    def check(self, settings: GenerationSettings) -> None:
        """Reject settings this provider cannot honour (see :func:`check_settings`)."""
        check_settings(self.provider, self.capabilities, settings)

    def error(self, status_code: int, headers: Mapping[str, str], body: bytes) -> ClientError:
        return error_from_response(
            self.provider, status_code, headers, body, model=self.model, secrets=(self._api_key,)
        )

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            # Parsed once: URL parsing costs more than the rest of a request's client work.
            url = self._urls[path] = URL(self.base_url + path)
        check_allow_model_requests(self.base_url)
        return url

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        """The aiohttp request context for POSTing ``body`` as JSON to ``path``."""
        url = self._url(path)
        session = self._http.session(self.base_url)
        return session.post(url, data=json.dumps(body).encode(), headers=self._headers, timeout=self._timeout)

    async def post_json(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``body`` and return the JSON object answered; an error status raises its ClientError."""
        request = self._post(path, body)
        with transport_errors(self.provider, secrets=(self._api_key,)):
            async with request as response:
                content = await response.read()
        if response.status >= 400:
            raise self.error(response.status, response.headers, content)
        return json_object(self.provider, content)

    @asynccontextmanager
    async def post_stream(
        self, path: str, body: Mapping[str, Any], decode: Callable[[AsyncIterator[bytes]], AsyncGenerator[T, None]]
    ) -> AsyncIterator[AsyncIterator[T]]:
        """POST ``body`` and yield the answer decoded by ``decode`` (SSE events, NDJSON lines) as it arrives.

        Leaving the block closes the decoder and returns the connection to the pool when the
        answer was read to its end; aiohttp closes the connection instead when the caller stopped
        early, failed or was cancelled.
        """
        request = self._post(path, body)
        secrets = (self._api_key,)
        with transport_errors(self.provider, secrets=secrets):
            response: aiohttp.ClientResponse = await request
        try:
            if response.status >= 400:
                with transport_errors(self.provider, secrets=secrets):
                    error_body = await response.read()
                raise self.error(response.status, response.headers, error_body)
            chunks = _guarded(response.content.iter_any(), self.provider, secrets)
            # Closed here rather than left to the garbage collector, which would finish them later
            # through the event loop's async-generator hook.
            async with aclosing(chunks), aclosing(decode(chunks)) as items:
                yield items
        finally:
            response.release()


async def _guarded(
    chunks: AsyncIterator[bytes], provider: str, secrets: tuple[str | None, ...]
) -> AsyncGenerator[bytes, None]:
    with transport_errors(provider, secrets=secrets):
        async for chunk in chunks:
            yield chunk
