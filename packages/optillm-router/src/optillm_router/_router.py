"""``ModelClientRouter``: one :class:`~optillm_core.ModelClient` over several providers.

Per request: order the routes with the strategy (routes cooling down or paused after the others),
then attempt, one route at a time (:class:`~optillm_router._route.Route` books each attempt).
After a failure the retry loop (:class:`_Retry`) picks the next attempt:

- a permanent failure (400, 401, 403, 404, 413, 422, a setting refused locally) rules the route
  out for this request; so does a spent retry count (``max_retries``; only ``UNREACHED_RETRIES``
  while the route has never answered and refuses connections) or a ``retry-after`` above the cap;
- a transient failure is retried on the same route after a backoff (the provider's
  ``retry-after`` when it gave one), while the route is not cooling down;
- otherwise the next route in the plan that is ready takes it at once; when none is, the call
  waits for the route that comes back first (the end of its cooldown or pause);
- every retry is charged to the run metering the call (:func:`optillm_core.charge_call`), which
  refuses it when the run's calls, tokens or deadline would not cover it.

A stream is retried, and falls back, only before its first event; after that a failure reaches
the caller, who has part of the answer already.
"""

from __future__ import annotations as _annotations

import math
import os
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Self

import structlog

from optillm_core import (
    BudgetExhausted,
    ClientError,
    Completed,
    Completion,
    FinishReason,
    GenerationSettings,
    InvalidConfiguration,
    ModelClient,
    ModelProfile,
    OutputTextDelta,
    Prompt,
    ProviderUnavailable,
    ReasoningDelta,
    ResponseEvent,
    TokenUsage,
    ToolCall,
    ToolCallDelta,
    charge_call,
    redact,
    run_time_left,
)

from ._clock import AnyioClock, Clock
from ._config import ProviderRoutingConfig, ProviderSpec, load_routing_config
from ._failures import FewerChoices, could_not_connect
from ._http import HttpPool
from ._limits import TokenEstimate, estimate_tokens
from ._providers import create_provider_client
from ._retry import beyond_cap, retry_allowed, retry_delay, should_retry
from ._route import OpenStream, Route
from ._strategies import RouteOrder, route_order
from ._usage import CallRecord, ProviderStats, UsageTotals

__all__ = ("ClientFactory", "ModelClientRouter")

log = structlog.get_logger("optillm")

ClientFactory = Callable[[ProviderSpec, "str | None"], ModelClient]
"""Builds the client of one provider from its spec and resolved API key (for tests and custom clients)."""

_NO_ESTIMATE = TokenEstimate(0, 0)


class ModelClientRouter(ModelClient):
    """A :class:`~optillm_core.ModelClient` that routes each request over the providers of a config.

    Any ``n`` is accepted: when every provider has native ``n`` a request goes out once with it;
    otherwise it becomes ``n`` concurrent single requests, each routed and limited on its own.
    ``async with`` (or :meth:`aclose`) closes the provider clients and the shared HTTP pool.

    ``client_factory(spec, api_key)`` replaces the HTTP provider clients (tests, custom clients);
    ``clock`` and ``rng`` make time and randomness injectable; ``on_call`` receives a
    :class:`CallRecord` after every attempt that reached a provider (failed ones carry their
    error); ``environ`` replaces ``os.environ`` for keys.
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
        self._routes: list[Route] = []
        self._secrets: tuple[str | None, ...] = tuple(keys)
        sole = len(specs) == 1
        try:
            for name, spec, key in zip(names, specs, keys, strict=True):
                client = factory(spec, key)
                route = Route(name, spec, client, key, config, self._clock, self._rng, on_call, sole=sole)
                self._routes.append(route)
        except BaseException:
            self._routes.clear()
            raise
        self._order = order or route_order(config.strategy, self._rng)
        self._needs_estimate = self._order.needs_estimate
        self._fallback = config.enable_fallback
        self._native_n = all(route.native_n for route in self._routes)
        self._max_retries = config.max_retries
        self._delays = {
            "initial": config.initial_retry_delay,
            "maximum": config.max_retry_delay,
            "max_retry_after": config.max_retry_after,
        }
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
        :meth:`request` itself accepts any ``n`` and fans out when it must. A provider that
        answers with fewer choices than asked loses its native ``n`` for the router's lifetime.
        """
        return self._native_n

    @property
    def profile(self) -> ModelProfile:
        """What every enabled provider's model accepts (the strictest of their profiles), so that a
        request fitted to it can go to any of them."""
        first, *rest = self._routes
        if not rest:  # read on every call: no generator for the usual single provider
            return first.profile
        return first.profile.strictest(route.profile for route in rest)

    @property
    def providers(self) -> tuple[str, ...]:
        """The names of the enabled providers, in config order."""
        return tuple(route.name for route in self._routes)

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        if settings.n > 1 and not self._native_n:
            return await self._fan_out(prompt, settings)
        plan = self._plan(prompt, settings)
        route, retry = plan[0], None
        if route.health.cooling_until is not None and not route.health.available(self._clock.now()):
            route, retry = await self._first_back(plan)
        number = 1
        while True:
            try:
                completion = await route.complete(prompt, settings, number)
                break
            except ClientError as exc:
                if retry is None:
                    retry = _Retry(self, plan)
                route, number = await retry.after(route, exc)
        if len(completion.texts) < settings.n:
            completion = await self._fill_choices(route, prompt, settings, completion)
        return completion

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        if settings.n > 1 and not self._native_n:
            for event in _events_of(await self.request(prompt, settings)):
                yield event
            return
        route, stream = await self._open_stream(prompt, settings)
        if isinstance(stream, FewerChoices):  # no event yet: every choice the provider sent was empty
            async for event in self._rest_of_stream(route, prompt, settings, stream):
                yield event
            return
        # Forwarded here rather than through a helper generator, which leaving early would not close.
        events = stream.events
        usage: TokenUsage | None = None
        failure: BaseException | None = None
        fewer: FewerChoices | None = None
        finished = False
        try:
            event = stream.first
            while True:
                if isinstance(event, Completed):
                    usage = event.usage
                yield event
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
                except FewerChoices as exc:  # its choices are complete; the others never came
                    fewer, usage = exc, exc.completion.usage
                    break
            finished = True
        except Exception as exc:
            failure = route.stream_failed(stream, exc)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            try:
                await _aclose(events)
            finally:
                if finished:
                    route.stream_finished(stream, usage)
                elif failure is None:
                    route.stream_abandoned(stream)
        if fewer is not None:
            async for event in self._rest_of_stream(route, prompt, settings, fewer):
                yield event

    async def _open_stream(
        self, prompt: Prompt, settings: GenerationSettings
    ) -> tuple[Route, OpenStream | FewerChoices]:
        """A stream up to its first event, retried and moved to other routes as a request is."""
        plan = self._plan(prompt, settings)
        route, retry = plan[0], None
        if route.health.cooling_until is not None and not route.health.available(self._clock.now()):
            route, retry = await self._first_back(plan)
        number = 1
        while True:
            try:
                return route, await route.open_stream(prompt, settings, number)
            except FewerChoices as exc:
                return route, exc
            except ClientError as exc:
                if retry is None:
                    retry = _Retry(self, plan)
                route, number = await retry.after(route, exc)

    async def _first_back(self, plan: Sequence[Route]) -> tuple[Route, _Retry]:
        """Every route is cooling down: the first back, once it is (the wait bounded by the run's deadline)."""
        retry = _Retry(self, plan)
        return await retry.first(), retry

    async def _fan_out(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        """``n`` single requests, each routed on its own; the ``n - 1`` beyond the one asked for are charged."""
        for _ in range(settings.n - 1):
            charge_call(retry=False)
        return await self.complete(prompt, settings)

    async def _fill_choices(
        self, route: Route, prompt: Prompt, settings: GenerationSettings, partial: Completion
    ) -> Completion:
        """Request the choices a provider left out as single calls, and stop using its native ``n``."""
        got = len(partial.texts)
        missing = settings.n - got
        rest = await self._missing_choices(route, prompt, settings, missing, got)
        finish: tuple[FinishReason | None, ...] = tuple(partial.finish_reason(i) for i in range(got))
        thinking = _padded(partial.thinking, got) + _padded(rest.thinking, missing)
        calls = _padded_calls(partial, got) + _padded_calls(rest, missing)
        return Completion(
            texts=partial.texts + rest.texts,
            thinking=thinking if any(thinking) else (),
            tool_calls=calls if any(calls) else (),
            usage=partial.usage + rest.usage,
            finish_reasons=finish + tuple(rest.finish_reason(i) for i in range(missing)),
            model=partial.model or rest.model,
        )

    async def _rest_of_stream(
        self, route: Route, prompt: Prompt, settings: GenerationSettings, fewer: FewerChoices
    ) -> AsyncIterator[ResponseEvent]:
        """The end of a stream that left out some choices: those, requested as single calls, then ``Completed``.

        The choices it did stream are complete and already with the caller, so the stream is not
        restarted: only the missing indexes are asked for, each as a plain single request, which
        (unlike a stream already under way) is retried on any transient fault. Their text arrives
        in one event per choice once they are all in.
        """
        partial = fewer.completion
        missing = fewer.missing or tuple(range(len(partial.texts), settings.n))
        if not missing:  # a client that said so without naming any: nothing to ask for
            yield Completed(usage=partial.usage, finish_reasons=partial.finish_reasons, model=partial.model)
            return
        rest = await self._missing_choices(route, prompt, settings, len(missing), missing[0])
        finish = list(partial.finish_reasons[: settings.n])
        finish += [None] * (settings.n - len(finish))
        for position, index in enumerate(missing):
            thought = rest.thinking[position] if position < len(rest.thinking) else ""
            if thought:
                yield ReasoningDelta(delta=thought, index=index)
            if rest.texts[position]:
                yield OutputTextDelta(delta=rest.texts[position], index=index)
            for number, call in enumerate(rest.calls_of(position)):
                yield ToolCallDelta(index=index, call=number, id=call.id, name=call.name, arguments=call.arguments)
            finish[index] = rest.finish_reason(position)
        yield Completed(
            usage=partial.usage + rest.usage, finish_reasons=tuple(finish), model=partial.model or rest.model
        )

    async def _missing_choices(
        self, route: Route, prompt: Prompt, settings: GenerationSettings, missing: int, first: int
    ) -> Completion:
        """``missing`` choices from index ``first`` on, as single calls (charged to the run), after turning
        native ``n`` off for good. With a seed, choice ``i`` gets ``seed + i``, as a fanned-out request's do."""
        route.native_n = False
        self._native_n = False
        log.info(
            "provider returned fewer choices than asked; requesting the rest as single calls",
            route=route.name,
            model=route.spec.model,
            choices=settings.n - missing,
            n=settings.n,
        )
        for _ in range(missing):
            charge_call(retry=False)
        rest = (
            settings.with_(n=missing)
            if settings.seed is None
            else settings.with_(n=missing, seed=settings.seed + first)
        )
        return await self.complete(prompt, rest)  # fanned out: native n is off now

    def _plan(self, prompt: Prompt, settings: GenerationSettings) -> Sequence[Route]:
        """The routes to try, in order: the strategy's order, with the routes that cannot serve now after it.

        Routes paused by a ``retry-after`` go after the ready ones, routes cooling down after
        those (the first back first), and routes whose model profile would leave out some of the
        settings (a temperature, a seed, stop sequences) last, where they serve the request
        without them if nothing else does. Without fallback the plan is one route: the
        strategy's first that is ready, else the first to come back.
        """
        routes = self._routes
        if len(routes) == 1:
            return routes
        estimate = estimate_tokens(prompt, settings) if self._needs_estimate else _NO_ESTIMATE
        ordered = self._order.order(routes, estimate)
        now = self._clock.now()
        if not self._fallback:
            first = next((r for r in ordered if r.health.available(now) and not r.limits.gate.paused(now)), None)
            return (first or min(ordered, key=lambda r: r.comeback(now)),)
        ready: list[Route] = []
        later: list[Route] = []
        cooling: list[Route] = []
        unable: list[Route] = []
        for route in ordered:
            if not route.health.available(now):
                cooling.append(route)
            elif not route.can_honour(settings):
                unable.append(route)
            elif route.limits.gate.paused(now):
                later.append(route)
            else:
                ready.append(route)
        if later or cooling or unable:
            later.sort(key=lambda r: r.comeback(now))
            cooling.sort(key=lambda r: r.comeback(now))
            ready += later + cooling + unable
        return ready

    def _exhausted(self, failures: dict[Route, ClientError], last: ClientError, attempts: int) -> ClientError:
        """The last failure's class, with a message naming every provider tried and why it failed."""
        if len(failures) == 1:
            ((route, only),) = failures.items()
            tries = f" after {attempts} attempts" if attempts > 1 else ""
            message = f"{route.name} failed{tries}: {only.message}"
        else:
            reasons = "; ".join(f"{route.name}: {exc.message}" for route, exc in failures.items())
            message = f"all {len(failures)} providers failed after {attempts} attempts ({reasons})"
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


def _padded(items: tuple[str, ...], length: int) -> tuple[str, ...]:
    return items[:length] + ("",) * (length - len(items))


def _events_of(completion: Completion) -> list[ResponseEvent]:
    """A finished completion as a stream: each choice's thinking, text and tool calls, then ``Completed``."""
    events: list[ResponseEvent] = []
    for index, text in enumerate(completion.texts):
        thought = completion.thinking[index] if index < len(completion.thinking) else ""
        if thought:
            events.append(ReasoningDelta(delta=thought, index=index))
        calls = completion.calls_of(index)
        if text or not calls:
            events.append(OutputTextDelta(delta=text, index=index))
        events += (
            ToolCallDelta(index=index, call=position, id=call.id, name=call.name, arguments=call.arguments)
            for position, call in enumerate(calls)
        )
    events.append(Completed(usage=completion.usage, finish_reasons=completion.finish_reasons, model=completion.model))
    return events


def _padded_calls(completion: Completion, length: int) -> tuple[tuple[ToolCall, ...], ...]:
    return tuple(completion.calls_of(i) for i in range(length))


async def _aclose(events: AsyncIterator[ResponseEvent]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


class _Retry:
    """One request's failed attempts: where and when its next attempt goes, or why there is none."""

    __slots__ = ("failures", "number", "out", "plan", "router", "tries")

    def __init__(self, router: ModelClientRouter, plan: Sequence[Route]) -> None:
        self.router = router
        self.plan = plan
        self.tries = [0] * len(plan)
        """Failed attempts per route of the plan."""
        self.out = [False] * len(plan)
        """Routes ruled out for this request."""
        self.failures: dict[Route, ClientError] = {}
        self.number = 1

    async def first(self) -> Route:
        """Every route is cooling down: wait for the first to come back, within the run's deadline."""
        now = self.router._clock.now()
        route, wait = self._soonest(now)
        if route is None:  # every route is paused for longer than the router waits
            *_, last = self.failures.values()
            raise self.router._exhausted(self.failures, last, 0)
        left = run_time_left()
        if wait >= left:
            names = ", ".join(r.name for r in self.plan)
            raise ProviderUnavailable(
                f"every provider is cooling down after repeated failures ({names}); the first is back in "
                f"{wait:.1f} s, after the run's deadline ({max(left, 0.0):.1f} s left)",
                retry_after=wait,
            )
        if wait > 0:
            log.info(
                "every provider is cooling down; waiting for the first back", route=route.name, wait=round(wait, 3)
            )
            await self.router._clock.sleep(wait)
        return route

    async def after(self, route: Route, error: ClientError) -> tuple[Route, int]:
        """Book ``error`` on ``route``, then wait and return the route and number of the next attempt.

        Raises the request's final error when no route is left, or :class:`BudgetExhausted`
        (caused by ``error``) when the run cannot pay for another attempt.
        """
        router = self.router
        index = self.plan.index(route)
        self.tries[index] += 1
        self.failures[route] = error
        cap = route.max_retry_after
        unreached = not route.reached and could_not_connect(error)
        if not retry_allowed(
            error, self.tries[index] - 1, max_retries=router._max_retries, max_retry_after=cap, unreached=unreached
        ):
            self.out[index] = True
            if should_retry(error) and beyond_cap(error.retry_after, cap) and error.status_code is not None:
                # the provider's own answer: say when it takes requests again
                self.failures[route] = error = route.paused_error(error.retry_after or 0.0, error)
        now = router._clock.now()
        if not self.out[index] and not route.health.cooling(now):
            choice: Route | None = route
            delay = retry_delay(self.tries[index] - 1, error.retry_after, router._rng, **router._delays)
        else:
            choice, delay = self._soonest(now)
        if choice is None:
            route.log_failure(error, self.number, None)
            raise router._exhausted(self.failures, error, self.number)
        route.log_failure(error, self.number, delay, None if choice is route else choice.name)
        try:
            charge_call(retry=True, wait=delay)
        except BudgetExhausted as exc:
            raise exc from error
        if delay > 0:
            await router._clock.sleep(delay)
        self.number += 1
        return choice, self.number

    def _soonest(self, now: float) -> tuple[Route | None, float]:
        """The route to try next and how long until it takes calls: the first ready in plan order,
        else the first to come back. A route whose provider asked for a pause beyond the cap is ruled out.
        """
        best: Route | None = None
        best_key = (math.inf, True)
        for index, route in enumerate(self.plan):
            if self.out[index]:
                continue
            paused = route.limits.gate.remaining(now)
            if paused > route.max_retry_after:
                self.out[index] = True
                self.failures.setdefault(route, route.paused_error(paused))
                continue
            wait = max(paused, route.health.remaining(now))
            key = (wait, not route.health.available(now))
            if key < best_key:
                best, best_key = route, key
        return best, best_key[0]
