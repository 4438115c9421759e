"""``ModelClientRouter``: one :class:`~optillm_core.ModelClient` over several providers.

Per request: order the providers with the strategy, drop those cooling down, then try them in
turn. On each provider a call is admitted by its limits, retried on retryable failures with
backoff, and recorded (usage, cost, latency, health). A stream is retried, and falls back, only
before its first event; after that a failure reaches the caller.
"""

from __future__ import annotations as _annotations

import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Self, TypeVar

import anyio
import structlog

from optillm_core import (
    AuthenticationError,
    ClientError,
    Completed,
    Completion,
    GenerationSettings,
    InvalidConfiguration,
    ModelClient,
    ModelProfile,
    OutputTextDelta,
    Prompt,
    ProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitError,
    ReasoningDelta,
    ResponseEvent,
    TokenUsage,
    redact,
)

from ._clock import AnyioClock, Clock
from ._config import ProviderRoutingConfig, ProviderSpec, load_routing_config
from ._health import Health
from ._http import HttpPool
from ._limits import ProviderLimits, Ticket, TokenEstimate, estimate_tokens
from ._providers import create_provider_client
from ._retry import retry_delay, should_retry
from ._strategies import RouteOrder, route_order
from ._usage import CallRecord, ProviderStats, UsageTotals, _Meter, cost_of

__all__ = ("ClientFactory", "ModelClientRouter")

log = structlog.get_logger("optillm")

T = TypeVar("T")

ClientFactory = Callable[[ProviderSpec, "str | None"], ModelClient]
"""Builds the client of one provider from its spec and resolved API key (for tests and custom clients)."""

LATENCY_SMOOTHING = 0.3
"""Weight of the newest observation in the latency moving average."""

_NO_ESTIMATE = TokenEstimate(0, 0)


class _Route(ModelClient):
    """One provider of a router: its client, limits, health, retries and meters."""

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
    ) -> None:
        self.name = name
        self.spec = spec
        self.client = client
        self.in_flight = 0
        self.latency: float | None = None
        self.meter = _Meter()
        self.health = Health(config.cooldown_failures, config.cooldown_seconds)
        self.limits = ProviderLimits(
            max_concurrency=spec.max_concurrency, rpm=spec.rpm, tpm=spec.tpm, clock=clock, rng=rng
        )
        self._secrets = (api_key,)
        self._clock = clock
        self._rng = rng
        self._on_call = on_call
        self._max_retries = config.max_retries
        self._timeout = spec.timeout_seconds or config.timeout_seconds
        self._delays = {
            "initial": config.initial_retry_delay,
            "maximum": config.max_retry_delay,
            "max_retry_after": config.max_retry_after,
        }
        self._max_retry_after = config.max_retry_after
        self._prices = (spec.input_price_per_million, spec.output_price_per_million)

    @property
    def model_name(self) -> str:
        return self.spec.model

    @property
    def supports_native_n(self) -> bool:
        return self.client.supports_native_n

    @property
    def profile(self) -> ModelProfile:
        return self.client.profile

    def can_honour(self, settings: GenerationSettings) -> bool:
        """Whether the model takes these settings as they are (its client would leave some out otherwise)."""
        return not self.client.profile.unsupported(settings)

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

    # -- one request, with retries ---------------------------------------------------------------

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        tokens = estimate_tokens(prompt, settings).total if self.limits.tracks_tokens else 0
        self.in_flight += 1
        try:
            completion, _, _ = await self._retrying(
                lambda attempt, probe, now: self._attempt(prompt, settings, tokens, attempt, probe, now)
            )
            return completion
        finally:
            self.in_flight -= 1

    async def _retrying(self, attempt_once: Callable[[int, bool, float], Awaitable[T]]) -> tuple[T, int, bool]:
        """``attempt_once(attempt, probe, now)`` until it succeeds or the retry policy gives up.

        Returns its result with the attempt number and whether it was the cooldown's probe.
        """
        attempt = 0
        while True:
            now = self._clock.now()
            probe = self._enter(now)
            try:
                return await attempt_once(attempt, probe, now), attempt, probe
            except ClientError as exc:
                delay = self._failed(exc, attempt, probe, may_retry=True)
                if delay is None:
                    raise
            except BaseException:
                self.health.abandoned(probe)
                raise
            await self._clock.sleep(delay)
            attempt += 1

    async def _attempt(
        self, prompt: Prompt, settings: GenerationSettings, tokens: int, attempt: int, probe: bool, now: float
    ) -> Completion:
        ticket = self.limits.admit_nowait(now)
        if ticket is None:
            ticket = await self.limits.admit(tokens)
            now = self._clock.now()
        try:
            # A bare cancel scope: fail_after's context-manager layers cost more per call.
            with anyio.CancelScope(deadline=anyio.current_time() + self._timeout) as scope:
                completion = await self.client.request(prompt, settings)
            if scope.cancelled_caught:
                raise TimeoutError
        except BaseException as exc:
            error = self._as_client_error(exc)
            ticket.release(0 if isinstance(error, ClientError) and error.status_code is not None else None)
            if error is exc:
                raise
            raise error from exc
        usage = completion.usage
        ticket.release(usage.total_tokens or None)  # no usage reported: keep the estimate
        self._succeeded(probe, attempt, self._clock.now() - now, usage, stream=False)
        return completion

    # -- one stream, retried before its first event -----------------------------------------------

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        tokens = estimate_tokens(prompt, settings).total if self.limits.tracks_tokens else 0
        self.in_flight += 1
        try:
            (ticket, events, first, start), attempt, probe = await self._retrying(
                lambda attempt, probe, now: self._open_stream(prompt, settings, tokens)
            )
            latency = self._clock.now() - start
            usage: TokenUsage | None = None
            outcome = "abandoned"
            try:
                event: ResponseEvent = first
                while True:
                    if isinstance(event, Completed):
                        usage = event.usage
                    yield event
                    try:
                        event = await anext(events)
                    except StopAsyncIteration:
                        break
                outcome = "ok"
            except ClientError as exc:
                outcome = "failed"
                self._failed(exc, attempt, probe, may_retry=False)
                raise
            finally:
                await _aclose(events)
                ticket.release((usage.total_tokens or None) if usage is not None else None)
                if outcome == "ok":
                    self._succeeded(probe, attempt, latency, usage or TokenUsage(), stream=True)
                elif outcome == "abandoned":
                    self.health.abandoned(probe)
        finally:
            self.in_flight -= 1

    async def _open_stream(
        self, prompt: Prompt, settings: GenerationSettings, tokens: int
    ) -> tuple[Ticket, AsyncIterator[ResponseEvent], ResponseEvent, float]:
        ticket = await self.limits.admit(tokens)
        start = self._clock.now()
        events = self.client.request_stream(prompt, settings)
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + self._timeout) as scope:
                first = await anext(events)
            if scope.cancelled_caught:
                raise TimeoutError
        except BaseException as exc:
            await _aclose(events)
            error = (
                ProtocolError(f"{self.name} ended its stream without sending anything", provider=self.spec.provider)
                if isinstance(exc, StopAsyncIteration)
                else self._as_client_error(exc)
            )
            ticket.release(0 if isinstance(error, ClientError) and error.status_code is not None else None)
            if error is exc:
                raise
            raise error from exc
        return ticket, events, first, start

    # -- bookkeeping -------------------------------------------------------------------------------

    def _enter(self, now: float) -> bool:
        probe = self.health.enter(now)
        if probe is None:
            raise self.cooling_error(now)
        return probe

    def cooling_error(self, now: float) -> ProviderUnavailable:
        remaining = self.health.remaining(now)
        when = f"for another {remaining:.1f} s" if remaining > 0 else "while a probe request decides"
        return ProviderUnavailable(
            f"{self.name} is cooling down after {self.health.consecutive_failures} consecutive failures ({when})",
            provider=self.spec.provider,
            retry_after=remaining or None,
        )

    def _as_client_error(self, exc: BaseException) -> BaseException:
        provider = self.spec.provider
        if isinstance(exc, ClientError):
            return exc
        if isinstance(exc, TimeoutError):
            return ProviderTimeout(f"{self.name} did not answer within {self._timeout:g} s", provider=provider)
        if isinstance(exc, ConnectionError):
            detail = redact(str(exc), self._secrets)
            return ProviderUnavailable(f"could not reach {self.name}: {detail}", provider=provider)
        return exc

    def _succeeded(self, probe: bool, attempt: int, latency: float, usage: TokenUsage, *, stream: bool) -> None:
        self.health.succeeded(probe)
        meter = self.meter
        meter.calls += 1
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
            attempt=attempt,
            latency=round(latency, 6),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            stream=stream,
        )
        if self._on_call is not None:
            self._on_call(
                CallRecord(
                    name=self.name,
                    provider=self.spec.provider,
                    model=self.spec.model,
                    usage=usage,
                    cost=cost,
                    latency=latency,
                    attempts=attempt + 1,
                    stream=stream,
                )
            )

    def _failed(self, exc: ClientError, attempt: int, probe: bool, *, may_retry: bool) -> float | None:
        """Record a failed attempt; the delay before retrying it, or ``None`` to give up on this provider."""
        now = self._clock.now()
        self.meter.failures += 1
        if _reflects_health(exc):
            self.health.failed(now, probe)
        else:
            self.health.abandoned(probe)
        if exc.retry_after is not None and exc.retry_after > 0 and should_retry(exc):
            self.limits.gate.pause(now, min(exc.retry_after, self._max_retry_after))
        retry = (
            may_retry
            and should_retry(exc)
            and attempt < self._max_retries
            and not probe
            and not self.health.cooling(now)
        )
        delay = retry_delay(attempt, exc.retry_after, self._rng, **self._delays) if retry else None
        if retry:
            self.meter.retries += 1
        log.warning(
            "model call failed",
            provider=self.spec.provider,
            model=self.spec.model,
            route=self.name,
            status=type(exc).__name__,
            status_code=exc.status_code,
            attempt=attempt,
            retry_in=None if delay is None else round(delay, 3),
            cooling_down=self.health.cooling(now),
            error=redact(str(exc), self._secrets),
        )
        return delay


def _reflects_health(exc: ClientError) -> bool:
    """Whether a failure says something is wrong with the provider (not with the request or the load).

    Rate limiting is backpressure, handled by backoff and the shared pause, not by a cooldown:
    a burst of 429s from concurrent calls must not make a single provider fail fast.
    """
    if isinstance(exc, RateLimitError) or exc.status_code == 429:
        return False
    return should_retry(exc) or isinstance(exc, AuthenticationError) or exc.status_code == 404


async def _aclose(events: AsyncIterator[ResponseEvent]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


class ModelClientRouter(ModelClient):
    """A :class:`~optillm_core.ModelClient` that routes each request over the providers of a config.

    Any ``n`` is accepted: when every provider has native ``n`` a request goes out once with it;
    otherwise it becomes ``n`` concurrent single requests, each routed and limited on its own.
    ``async with`` (or :meth:`aclose`) closes the provider clients and the shared HTTP pool.

    ``client_factory(spec, api_key)`` replaces the HTTP provider clients (tests, custom clients);
    ``clock`` and ``rng`` make time and randomness injectable; ``on_call`` receives a
    :class:`CallRecord` after every successful call; ``environ`` replaces ``os.environ`` for keys.
    """

    def __init__(
        self,
        config: ProviderRoutingConfig,
        *,
        client_factory: ClientFactory | None = None,
        http: HttpPool | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_call: Callable[[CallRecord], None] | None = None,
        environ: Mapping[str, str] | None = None,
        order: RouteOrder | None = None,
    ) -> None:
        specs = [spec for spec in config.providers if spec.enabled]
        if not specs:
            raise InvalidConfiguration("router config has no enabled provider; set enabled = true on at least one")
        self.config = config
        self._clock: Clock = clock or AnyioClock()
        self._rng = rng or random.Random()
        self._owns_http = http is None and client_factory is None
        self._http = http if http is not None else (HttpPool() if client_factory is None else None)
        factory = client_factory or self._provider_client
        keys = [spec.resolve_api_key(os.environ if environ is None else environ) for spec in specs]
        names = _unique_names([spec.label for spec in specs])
        self._routes: list[_Route] = []
        self._secrets: tuple[str | None, ...] = tuple(keys)
        try:
            for name, spec, key in zip(names, specs, keys, strict=True):
                client = factory(spec, key)
                self._routes.append(_Route(name, spec, client, key, config, self._clock, self._rng, on_call))
        except BaseException:
            self._routes.clear()
            raise
        self._order = order or route_order(config.strategy, self._rng)
        self._needs_estimate = self._order.needs_estimate
        self._fallback = config.enable_fallback
        self._native_n = all(route.supports_native_n for route in self._routes)
        self._closed = False

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def from_config(
        cls, config: ProviderRoutingConfig | Mapping[str, Any] | str | os.PathLike[str], **options: Any
    ) -> Self:
        """A router from a config object, a mapping, or a TOML/YAML/JSON file path."""
        if not isinstance(config, ProviderRoutingConfig):
            config = load_routing_config(config)
        return cls(config, **options)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **options: Any) -> Self:
        return cls(load_routing_config(path), **options)

    def _provider_client(self, spec: ProviderSpec, api_key: str | None) -> ModelClient:
        assert self._http is not None
        return create_provider_client(
            spec.provider,
            model=spec.model,
            api_key=api_key,
            base_url=spec.base_url,
            http=self._http,
            timeout=spec.timeout_seconds or self.config.timeout_seconds,
            connect_timeout=spec.connect_timeout_seconds or self.config.connect_timeout_seconds,
            profile=spec.model_profile(),
        )

    # -- ModelClient ---------------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self._routes[0].spec.model

    @property
    def supports_native_n(self) -> bool:
        """Whether every enabled provider returns ``n`` choices in one request.

        When one does not, ``complete``/``stream`` fan ``n`` out into single requests, each routed
        on its own, so call accounting (``MeteredClient``, budgets) counts every request sent.
        :meth:`request` itself accepts any ``n`` and fans out per provider when it must.
        """
        return self._native_n

    @property
    def profile(self) -> ModelProfile:
        """What every enabled provider's model accepts (the strictest of their profiles), so that a
        request fitted to it can go to any of them."""
        first, *rest = self._routes
        return first.profile.strictest(route.profile for route in rest)

    @property
    def providers(self) -> tuple[str, ...]:
        """The names of the enabled providers, in config order."""
        return tuple(route.name for route in self._routes)

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        failures: list[tuple[_Route, ClientError]] = []
        for route in self._plan(prompt, settings):
            try:
                return await route.complete(prompt, settings)
            except ClientError as exc:
                failures.append((route, exc))
        raise self._exhausted(failures)

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        failures: list[tuple[_Route, ClientError]] = []
        for route in self._plan(prompt, settings):
            if settings.n > 1 and not route.supports_native_n:
                try:
                    completion = await route.complete(prompt, settings)
                except ClientError as exc:
                    failures.append((route, exc))
                    continue
                for index, text in enumerate(completion.texts):
                    thought = completion.thinking[index] if index < len(completion.thinking) else ""
                    if thought:
                        yield ReasoningDelta(delta=thought, index=index)
                    yield OutputTextDelta(delta=text, index=index)
                yield Completed(
                    usage=completion.usage, finish_reasons=completion.finish_reasons, model=completion.model
                )
                return
            events = route.request_stream(prompt, settings)
            try:
                first = await anext(events)
            except ClientError as exc:
                failures.append((route, exc))
                continue
            try:
                yield first
                async for event in events:
                    yield event
            finally:
                await _aclose(events)
            return
        raise self._exhausted(failures)

    def _plan(self, prompt: Prompt, settings: GenerationSettings) -> Sequence[_Route]:
        """The providers to try, in order: the strategy's order less those cooling down.

        Providers paused by a ``retry-after`` go after the others, and providers whose model
        profile would leave out some of the settings (a temperature, a seed, stop sequences) go
        last, where they serve the request without them if nothing else does. Without fallback
        only the strategy's first choice is tried.
        """
        estimate = estimate_tokens(prompt, settings) if self._needs_estimate else _NO_ESTIMATE
        ordered = self._order.order(self._routes, estimate)
        now = self._clock.now()
        if not self._fallback:
            first = ordered[0]
            if not first.health.available(now):
                raise first.cooling_error(now)
            return (first,)
        ready: list[_Route] = []
        later: list[_Route] = []
        unable: list[_Route] = []
        for route in ordered:
            if not route.health.available(now):
                continue
            if not route.can_honour(settings):
                unable.append(route)
            elif route.limits.gate.paused(now):
                later.append(route)
            else:
                ready.append(route)
        if later or unable:
            ready.extend(later)
            ready.extend(unable)
        if not ready:
            raise self._all_cooling(ordered, now)
        return ready

    def _all_cooling(self, routes: Sequence[_Route], now: float) -> ProviderUnavailable:
        remaining = min(route.health.remaining(now) for route in routes)
        names = ", ".join(route.name for route in routes)
        return ProviderUnavailable(
            f"every provider is cooling down after repeated failures ({names}); "
            f"the first is available again in {remaining:.1f} s",
            retry_after=remaining or None,
        )

    def _exhausted(self, failures: list[tuple[_Route, ClientError]]) -> ClientError:
        """The last failure's class, with a message naming every provider tried and why it failed."""
        last_route, last = failures[-1]
        if len(failures) == 1:
            message = f"{last_route.name} failed: {last.message}"
        else:
            reasons = "; ".join(f"{route.name}: {exc.message}" for route, exc in failures)
            message = f"all {len(failures)} providers failed ({reasons})"
        message = redact(message, self._secrets)
        try:
            error = type(last)(
                message, provider=last.provider, status_code=last.status_code, retry_after=last.retry_after
            )
        except TypeError:
            return last
        error.__cause__ = last
        return error

    # -- usage and stats --------------------------------------------------------------------------------

    @property
    def usage(self) -> UsageTotals:
        """Totals over every provider since the router was made."""
        return sum((route.meter.snapshot() for route in self._routes), UsageTotals())

    def provider_stats(self) -> dict[str, ProviderStats]:
        """A snapshot per provider, by name."""
        return {route.name: route.stats() for route in self._routes}

    def __repr__(self) -> str:
        return (
            f"ModelClientRouter(providers={list(self.providers)!r}, strategy={self.config.strategy.value!r}, "
            f"fallback={self._fallback}, max_retries={self.config.max_retries})"
        )

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for route in self._routes:
                await route.client.aclose()
        finally:
            if self._owns_http and self._http is not None:
                await self._http.aclose()


def _unique_names(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for label in labels:
        count = seen.get(label, 0) + 1
        seen[label] = count
        names.append(label if count == 1 else f"{label}#{count}")
    return names
