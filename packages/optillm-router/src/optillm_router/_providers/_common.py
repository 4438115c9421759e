"""What every HTTP provider client shares: fitting settings to the model, requests, learning from 400s, errors."""

from __future__ import annotations as _annotations

import time
from abc import abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing, asynccontextmanager
from typing import Any, ClassVar, TypeVar

import aiohttp
from pydantic_core import from_json, to_json
from yarl import URL

from optillm_core import (
    BadRequestError,
    ClientError,
    FinishReason,
    GenerationSettings,
    InvalidConfiguration,
    Message,
    ModelClient,
    ModelProfile,
    Prompt,
    ProtocolError,
    check_allow_model_requests,
    logger,
)

from .._failures import attempt_timed_out
from .._http import HttpPool, error_from_response, request_timeout, transport_errors, whole_request_timeout
from ._lessons import learned_profile

__all__ = ("HttpModelClient", "check_n", "check_tools", "fit_settings", "json_object", "map_finish", "wire_messages")

log = logger  # bound once per structlog configuration: these log on every call

T = TypeVar("T")


def check_n(provider: str, profile: ModelProfile, settings: GenerationSettings) -> None:
    """Reject ``n`` > 1 where one request cannot return several choices (core fans it out instead)."""
    if settings.n == 1:
        return
    if not profile.native_n:
        raise BadRequestError(
            f"{provider} cannot return n={settings.n} choices in one request; "
            "call ModelClient.complete/stream, which fan n out into single requests",
            provider=provider,
        )
    if profile.max_n is not None and settings.n > profile.max_n:
        raise BadRequestError(
            f"{provider} returns at most {profile.max_n} choices per request, got n={settings.n}; ask for fewer",
            provider=provider,
        )


def check_tools(provider: str, model: str, profile: ModelProfile, settings: GenerationSettings) -> None:
    """Refuse tools the model does not take: left out, the caller's tool calls would be lost."""
    if settings.tools and not profile.tools:
        raise BadRequestError(
            f"{provider}/{model} does not take tools (function calling); send the request without tools, "
            "or to a model that takes them",
            provider=provider,
        )


def fit_settings(provider: str, model: str, profile: ModelProfile, settings: GenerationSettings) -> GenerationSettings:
    """``settings`` as the model accepts them: refused settings left out, the output limit fitted to its cap.

    Tools are the exception: a model that does not take them refuses the request
    (:class:`~optillm_core.BadRequestError`), since without them the caller's tool calls would be lost.
    """
    check_n(provider, profile, settings)
    check_tools(provider, model, profile, settings)
    if _already_fitted(profile, settings):
        return settings
    fitted = profile.fit(settings)
    if fitted.dropped:
        log.debug("settings fitted to the model", provider=provider, model=model, dropped=list(fitted.dropped))
    return fitted.settings


def _already_fitted(profile: ModelProfile, settings: GenerationSettings) -> bool:
    """Whether ``profile.fit`` would return ``settings`` unchanged: the usual case, since core fits a
    strategy's calls already; checked without building a ``FittedSettings`` on every request."""
    if profile.unsupported(settings) or profile.output_limit(settings.max_tokens) != settings.max_tokens:
        return False
    floor = profile.temperature_min
    return floor is None or settings.temperature is None or settings.temperature >= floor


def wire_messages(prompt: Prompt, profile: ModelProfile) -> tuple[Message, ...]:
    """The prompt's messages; for a model that refuses system messages, the system text opens the first user turn."""
    messages = prompt.effective_messages()
    if profile.system_messages or not any(m.role == "system" for m in messages):
        return messages
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    rest = [m for m in messages if m.role != "system"]
    first_user = next((i for i, m in enumerate(rest) if m.role == "user"), None)
    if first_user is None:
        return (Message.user(system), *rest)
    rest[first_user] = Message.user(f"{system}\n\n{rest[first_user].content}")
    return tuple(rest)


def json_object(provider: str, body: bytes | str) -> dict[str, Any]:
    """Parse a JSON object body, or raise :class:`ProtocolError`."""
    try:
        payload = from_json(body)  # pydantic-core's parser: about three times faster than json.loads on bytes
    except ValueError as exc:
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

    Every request is fitted to the model's :class:`~optillm_core.ModelProfile` first, so it carries
    only settings the model accepts. When the provider still answers 400 naming a setting the
    profile allowed, the client learns it (for this model, for the client's lifetime) and sends
    the request once more without it; that is a safety net for models the profiles do not know.
    Otherwise it never retries: the router decides what to do with each :class:`ClientError`.
    """

    max_tokens_fields: ClassVar[frozenset[str]] = frozenset({"max_tokens"})
    """The output-limit fields this wire format has (a profile must name one of them)."""

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        base_url: str,
        api_key: str | None,
        http: HttpPool,
        profile: ModelProfile,
        timeout: float,
        connect_timeout: float,
    ) -> None:
        if profile.max_tokens_field not in self.max_tokens_fields:
            fields = " or ".join(sorted(self.max_tokens_fields))
            raise InvalidConfiguration(
                f"{provider}/{model}: profile max_tokens_field {profile.max_tokens_field!r} does not exist on "
                f"this wire format; use {fields}"
            )
        self.provider = provider
        self.model = model
        self.base_url = base_url.rstrip("/")
        self._profile = profile
        self._api_key = api_key
        self._http = http
        self.attempt_timeout = timeout
        """Seconds a plain request may take in all: past it the request raises :class:`ProviderTimeout`
        itself, so a router whose attempts are no shorter needs no timer of its own around it."""
        self._connect_timeout = connect_timeout
        self._timeout = whole_request_timeout(timeout, connect_timeout)
        self._stream_timeout = request_timeout(timeout, connect_timeout)
        self._headers = self.auth_headers(api_key)
        self._urls: dict[str, URL] = {}

    @abstractmethod
    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """The headers sent with every request (authentication, versions)."""

    @abstractmethod
    def build_body(
        self, prompt: Prompt, settings: GenerationSettings, profile: ModelProfile, *, stream: bool
    ) -> dict[str, Any]:
        """The request body for settings already fitted to ``profile``."""

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def profile(self) -> ModelProfile:
        """What the model accepts: its catalogue profile, and what 400s taught this client since."""
        return self._profile

    @property
    def supports_native_n(self) -> bool:
        return self._profile.native_n

    def __repr__(self) -> str:
        return f"{type(self).__name__}(provider={self.provider!r}, model={self.model!r}, base_url={self.base_url!r})"

    def request_body(self, prompt: Prompt, settings: GenerationSettings, *, stream: bool) -> dict[str, Any]:
        """The body sent for ``settings``: fitted to the profile, then written in the wire format."""
        fitted = fit_settings(self.provider, self.model, self._profile, settings)
        return self.build_body(prompt, fitted, self._profile, stream=stream)

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

    async def _open(self, path: str, body: Mapping[str, Any], limits: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        """POST ``body`` and return the response once its status is known to be a success."""
        url = self._url(path)
        session = self._http.session(self.base_url)
        secrets = (self._api_key,)
        whole = None if limits.total is None else self.attempt_timeout  # what a bare TimeoutError means
        with transport_errors(self.provider, secrets=secrets, timeout=whole):
            # pydantic-core's encoder: several times faster than json.dumps on a long prompt, and
            # UTF-8 as it is rather than \u-escaped.
            response = await session.post(url, data=to_json(body), headers=self._headers, timeout=limits)
        if response.status < 400:
            return response
        try:
            with transport_errors(self.provider, secrets=secrets, timeout=whole):
                error_body = await response.read()
        finally:
            response.release()
        raise self.error(response.status, response.headers, error_body)

    async def _send(
        self, path: str, prompt: Prompt, settings: GenerationSettings, *, stream: bool
    ) -> aiohttp.ClientResponse:
        """Open the request; a 400 refusing a setting the profile allowed is learned and the request sent once more.

        A plain request's timeout covers all of it, the answer included, so the second sending gets
        what is left of it; a stream's bounds each read (the router bounds the wait for its first event).
        """
        body = self.request_body(prompt, settings, stream=stream)
        limits = self._stream_timeout if stream else self._timeout
        started = time.monotonic()
        try:
            return await self._open(path, body, limits)
        except BadRequestError as exc:
            retry = self._learn(exc, prompt, settings, body, stream=stream)
            if retry is None:
                raise
        if not stream:
            left = self.attempt_timeout - (time.monotonic() - started)
            if left <= 0:
                raise attempt_timed_out(self.provider, self.attempt_timeout, self.provider)
            limits = whole_request_timeout(left, self._connect_timeout)
        try:
            return await self._open(path, retry, limits)
        except BadRequestError as exc:
            self._learn(exc, prompt, settings, retry, stream=stream)  # remembered for the next request only
            raise

    def _learn(
        self,
        exc: BadRequestError,
        prompt: Prompt,
        settings: GenerationSettings,
        sent: Mapping[str, Any],
        *,
        stream: bool,
    ) -> dict[str, Any] | None:
        """The body to send again after ``exc`` taught the profile something, or ``None``."""
        if exc.status_code != 400:
            return None
        learned = learned_profile(self._profile, exc.message, self.max_tokens_fields)
        if learned is None:
            return None
        if settings.tools and not learned.tools:
            # Sent again without the tools, the answer would lose the caller's tool calls: the 400 stands.
            self._adopt(learned, exc, "model refused the tools its profile allowed; refusing requests with tools now")
            return None
        fitted = fit_settings(self.provider, self.model, learned, settings)
        body = self.build_body(prompt, fitted, learned, stream=stream)
        if body == sent:
            return None  # the refused setting was not in this request: the lesson does not explain the 400
        self._adopt(learned, exc, "model refused a setting its profile allowed; sending without it from now on")
        return body

    def _adopt(self, learned: ModelProfile, exc: BadRequestError, event: str) -> None:
        changed = sorted(k for k, v in learned.model_dump().items() if getattr(self._profile, k) != v)
        self._profile = learned
        log.warning(
            event,
            provider=self.provider,
            model=self.model,
            learned=changed,
            error=exc.message,
        )

    async def post_json(self, path: str, prompt: Prompt, settings: GenerationSettings) -> dict[str, Any]:
        """Send the request and return the JSON object answered; an error status raises its ClientError."""
        response = await self._send(path, prompt, settings, stream=False)
        try:
            with transport_errors(self.provider, secrets=(self._api_key,), timeout=self.attempt_timeout):
                content = await response.read()
        finally:
            response.release()
        return json_object(self.provider, content)

    @asynccontextmanager
    async def post_stream(
        self,
        path: str,
        prompt: Prompt,
        settings: GenerationSettings,
        decode: Callable[[AsyncIterator[bytes]], AsyncGenerator[T, None]],
    ) -> AsyncIterator[AsyncIterator[T]]:
        """Send the streaming request and yield the answer decoded by ``decode`` (SSE events, NDJSON lines).

        Leaving the block closes the decoder and returns the connection to the pool when the
        answer was read to its end; aiohttp closes the connection instead when the caller stopped
        early, failed or was cancelled.
        """
        response = await self._send(path, prompt, settings, stream=True)
        try:
            chunks = _guarded(response.content.iter_any(), self.provider, (self._api_key,))
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
