"""One route of a router: a provider's client behind its limits, health and meters, one attempt at a time.

A :class:`Route` makes single attempts and keeps the books on them (admission, the attempt
timeout, the failure mapping, health, the pause gate, usage, latency, events); whether and where
to try again is the router's retry loop (:mod:`optillm_router._router`).
"""

from __future__ import annotations as _annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

from optillm_core import (
    AuthenticationError,
    ClientError,
    Completion,
    GenerationSettings,
    ModelClient,
    ModelProfile,
    Prompt,
    ProtocolError,
    RateLimitError,
    ResponseEvent,
    TokenUsage,
    logger,
    redact,
)

from ._clock import Clock
from ._config import ProviderRoutingConfig, ProviderSpec
from ._failures import FewerChoices, attempt_timed_out, client_error, could_not_connect, refused_locally
from ._health import Health
from ._limits import Paused, ProviderLimits, Ticket, estimate_tokens
from ._providers._common import HttpModelClient
from ._retry import should_retry
from ._usage import CallRecord, ProviderStats, _Meter, cost_of

__all__ = ("OpenStream", "Route")

log = logger  # bound once per structlog configuration: these log on every call

LATENCY_SMOOTHING = 0.3
"""Weight of the newest observation in the latency moving average."""


@dataclass(slots=True)
class OpenStream:
    """A stream whose first event has arrived: the route holds its ticket until the stream ends."""

    events: AsyncIterator[ResponseEvent]
    first: ResponseEvent
    ticket: Ticket
    start: float
    latency: float
    probe: bool
    number: int


class Route:
    """One provider of a router: its client, limits, health and meters."""

    def __init__(
        self,
        name: str,
        spec: ProviderSpec,
        client: ModelClient,
        api_key: str | None,
        config: ProviderRoutingConfig,
        clock: Clock,
        rng: random.Random,
        on_call: Callable[[CallRecord], None] | None,
        *,
        sole: bool,
    ) -> None:
        self.name = name
        self.spec = spec
        self.client = client
        self.in_flight = 0
        self.latency: float | None = None
        self.meter = _Meter()
        self.health = Health(config.cooldown_failures, config.cooldown_seconds, config.max_cooldown_seconds, sole=sole)
        self.limits = ProviderLimits(
            max_concurrency=spec.max_concurrency, rpm=spec.rpm, tpm=spec.tpm, clock=clock, rng=rng
        )
        self.reached = False
        """Whether any attempt has got through to the provider (an answer of any kind)."""
        self.native_n = client.supports_native_n
        """Whether one request returns ``n`` choices; turned off when the provider returns fewer."""
        self.max_retry_after = config.max_retry_after
        self._secrets = (api_key,)
        self._clock = clock
        self._on_call = on_call
        self._timeout = spec.timeout_seconds or config.timeout_seconds
        # An HTTP client whose plain requests time out on their own within the attempt timeout needs
        # no cancel scope around them: its timer is aiohttp's, which every request has anyway, where
        # a scope adds a timer, two sets and the task-state bookkeeping to every attempt.
        self._bounded = isinstance(client, HttpModelClient) and client.attempt_timeout <= self._timeout
        self._prices = (spec.input_price_per_million, spec.output_price_per_million)

    # -- what the router reads ---------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self.spec.model

    @property
    def profile(self) -> ModelProfile:
        return self.client.profile

    def can_honour(self, settings: GenerationSettings) -> bool:
        """Whether the model takes these settings as they are (its client would leave some out otherwise)."""
        return not self.client.profile.unsupported(settings)

    def comeback(self, now: float) -> float:
        """Seconds until the route takes calls again: the rest of its cooldown or of its provider's pause."""
        return max(self.health.remaining(now), self.limits.gate.remaining(now))

    def stats(self) -> ProviderStats:
        now = self._clock.now()
        return ProviderStats(
            name=self.name,
            provider=self.spec.provider,
            model=self.spec.model,
            usage=self.meter.snapshot(),
            in_flight=self.in_flight,
            latency=self.latency,
            consecutive_failures=self.health.consecutive_failures,
            cooling_down=self.health.cooling(now),
        )

    # -- one attempt -------------------------------------------------------------------------------

    async def complete(self, prompt: Prompt, settings: GenerationSettings, number: int) -> Completion:
        """One attempt at a request (``number`` counts the request's attempts, from 1)."""
        now = self._clock.now()
        probe = self.health.enter(now)
        self.in_flight += 1
        try:
            ticket = self.limits.admit_nowait(now)
            if ticket is None:
                ticket = await self._admit(prompt, settings, probe)
                now = self._clock.now()
            try:
                if self._bounded:
                    completion = await self.client.request(prompt, settings)
                else:
                    # A bare cancel scope: fail_after's context-manager layers cost more per call.
                    with anyio.CancelScope(deadline=anyio.current_time() + self._timeout) as scope:
                        completion = await self.client.request(prompt, settings)
                    if scope.cancelled_caught:
                        raise TimeoutError
            except FewerChoices as exc:
                completion = exc.completion
            except BaseException as exc:
                error = self._attempt_failed(exc, ticket, probe, number, stream=False)
                if error is exc:
                    raise
                raise error from exc
            usage = completion.usage
            ticket.release(usage.total_tokens or None)  # no usage reported: keep the estimate
            self._succeeded(probe, number, self._clock.now() - now, usage, stream=False)
            return completion
        finally:
            self.in_flight -= 1

    async def open_stream(self, prompt: Prompt, settings: GenerationSettings, number: int) -> OpenStream:
        """One attempt at a stream, up to its first event; the caller ends it with one of ``stream_*``."""
        now = self._clock.now()
        probe = self.health.enter(now)
        self.in_flight += 1
        try:
            ticket = self.limits.admit_nowait(now)
            if ticket is None:
                ticket = await self._admit(prompt, settings, probe)
            start = self._clock.now()
            events = self.client.request_stream(prompt, settings)
            try:
                with anyio.CancelScope(deadline=anyio.current_time() + self._timeout) as scope:
                    first = await anext(events)
                if scope.cancelled_caught:
                    raise TimeoutError
            except FewerChoices as exc:  # every choice it sent was empty: the router requests the rest
                await _aclose(events)
                usage = exc.completion.usage
                ticket.release(usage.total_tokens or None)
                self._succeeded(probe, number, self._clock.now() - start, usage, stream=True)
                raise
            except BaseException as exc:
                await _aclose(events)
                if isinstance(exc, StopAsyncIteration):
                    empty = ProtocolError(
                        f"{self.name} ended its stream without sending anything", provider=self.spec.provider
                    )
                    raise self._attempt_failed(empty, ticket, probe, number, stream=True) from None
                error = self._attempt_failed(exc, ticket, probe, number, stream=True)
                if error is exc:
                    raise
                raise error from exc
        except BaseException:
            self.in_flight -= 1
            raise
        return OpenStream(events, first, ticket, start, self._clock.now() - start, probe, number)

    def stream_finished(self, stream: OpenStream, usage: TokenUsage | None) -> None:
        self.in_flight -= 1
        stream.ticket.release((usage.total_tokens or None) if usage is not None else None)
        self._succeeded(stream.probe, stream.number, stream.latency, usage or TokenUsage(), stream=True)

    def stream_failed(self, stream: OpenStream, exc: BaseException) -> BaseException:
        """Book a stream that broke after its first event (not retried: part of it was delivered)."""
        self.in_flight -= 1
        error = self._attempt_failed(exc, stream.ticket, stream.probe, stream.number, stream=True)
        if isinstance(error, ClientError):
            self.log_failure(error, stream.number, None)
        return error

    def stream_abandoned(self, stream: OpenStream) -> None:
        """The caller left the stream early, or was cancelled: nothing is known about the provider."""
        self.in_flight -= 1
        stream.ticket.release(None)
        self.health.abandoned(stream.probe)

    # -- bookkeeping -------------------------------------------------------------------------------

    async def _admit(self, prompt: Prompt, settings: GenerationSettings, probe: bool) -> Ticket:
        tokens = estimate_tokens(prompt, settings).total if self.limits.tracks_tokens else 0
        try:
            return await self.limits.admit(tokens, max_pause=self.max_retry_after)
        except Paused as paused:
            self.health.abandoned(probe)
            raise self.paused_error(paused.remaining) from None
        except BaseException:
            self.health.abandoned(probe)
            raise

    def paused_error(self, remaining: float, reason: ClientError | None = None) -> RateLimitError:
        """The refusal of a route whose provider asked for a pause longer than ``max_retry_after``."""
        back = datetime.fromtimestamp(time.time() + remaining, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        asked = f"{reason.message}; " if reason is not None else ""
        return RateLimitError(
            f"{asked}{self.name} takes requests again in {remaining:.0f} s (at about {back}), "
            f"longer than max_retry_after ({self.max_retry_after:g} s), so the router does not wait",
            provider=self.spec.provider,
            status_code=reason.status_code if reason is not None else None,
            retry_after=remaining,
        )

    def _as_client_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, ClientError):
            return exc
        if isinstance(exc, TimeoutError):
            return attempt_timed_out(self.name, self._timeout, self.spec.provider)
        return client_error(exc, self.name, provider=self.spec.provider, secrets=self._secrets) or exc

    def _attempt_failed(
        self, exc: BaseException, ticket: Ticket, probe: bool, number: int, *, stream: bool
    ) -> BaseException:
        """Book a failed attempt: the ticket, health, pause gate, meters and event. Returns the error to raise."""
        error = self._as_client_error(exc)
        if refused_locally(error):
            ticket.cancel()
        elif isinstance(error, ClientError) and error.status_code is not None:
            ticket.release(0)
        else:
            ticket.release(None)
        if not isinstance(error, ClientError) or refused_locally(error):
            self.health.abandoned(probe)
            return error
        if not self.reached and not could_not_connect(error):
            self.reached = True
        now = self._clock.now()
        self.meter.failures += 1
        if number > 1:
            self.meter.retries += 1
        if _reflects_health(error):
            self.health.failed(now, probe)
        else:
            self.health.abandoned(probe)
        if error.retry_after is not None and error.retry_after > 0 and should_retry(error):
            self.limits.gate.pause(now, error.retry_after)
        if self._on_call is not None:
            self._on_call(self._record(TokenUsage(), 0.0, 0.0, number, stream, redact(str(error), self._secrets)))
        return error

    def log_failure(
        self, error: ClientError, number: int, retry_in: float | None, next_route: str | None = None
    ) -> None:
        log.warning(
            "model call failed",
            provider=self.spec.provider,
            model=self.spec.model,
            route=self.name,
            status=type(error).__name__,
            status_code=error.status_code,
            attempt=number - 1,
            retry_in=None if retry_in is None else round(retry_in, 3),
            next_route=next_route,
            cooling_down=self.health.cooling(self._clock.now()),
            error=redact(str(error), self._secrets),
        )

    def _succeeded(self, probe: bool, number: int, latency: float, usage: TokenUsage, *, stream: bool) -> None:
        self.reached = True
        self.health.succeeded(probe)
        meter = self.meter
        meter.calls += 1
        if number > 1:
            meter.retries += 1
        meter.input_tokens += usage.input_tokens
        meter.output_tokens += usage.output_tokens
        cost = cost_of(usage, *self._prices)
        meter.cost += cost
        previous = self.latency
        self.latency = latency if previous is None else previous + LATENCY_SMOOTHING * (latency - previous)
        log.debug(
            "model call finished",
            provider=self.spec.provider,
            model=self.spec.model,
            route=self.name,
            status="ok",
            attempt=number - 1,
            latency=round(latency, 6),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            stream=stream,
        )
        if self._on_call is not None:
            self._on_call(self._record(usage, cost, latency, number, stream, None))

    def _record(
        self, usage: TokenUsage, cost: float, latency: float, number: int, stream: bool, error: str | None
    ) -> CallRecord:
        return CallRecord(
            name=self.name,
            provider=self.spec.provider,
            model=self.spec.model,
            usage=usage,
            cost=cost,
            latency=latency,
            attempts=number,
            stream=stream,
            retry=number > 1,
            error=error,
        )


def _reflects_health(exc: ClientError) -> bool:
    """Whether a failure says something is wrong with the provider (not with the request or the load).

    Rate limiting is backpressure, handled by backoff and the shared pause, not by a cooldown:
    a burst of 429s from concurrent calls must not push a provider's calls elsewhere.
    """
    if isinstance(exc, RateLimitError) or exc.status_code == 429:
        return False
    return should_retry(exc) or isinstance(exc, AuthenticationError) or exc.status_code == 404


async def _aclose(events: AsyncIterator[ResponseEvent]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
