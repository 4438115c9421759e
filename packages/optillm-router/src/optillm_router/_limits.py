"""Per-provider admission: a shared pause gate, a concurrency cap and sliding-window rpm/tpm budgets.

A call is admitted in three steps, all skipped at no cost when nothing limits the provider:

1. wait while the provider is paused (a 429 with ``retry-after`` pauses it for every caller); a
   pause longer than the caller will wait refuses the call at once (:class:`Paused`);
2. take a concurrency slot (held until the answer, or the stream, ends);
3. reserve one request and the estimated tokens (prompt estimate + ``max_tokens``) in the
   60-second windows; the token reservation is settled on the real usage afterwards.

Reservations queue in FIFO order behind one lock, so hundreds of concurrent callers cannot
overshoot a budget: at any moment the reservations of the last 60 seconds fit within it. A call
that was never sent gives its reservation back whole (:meth:`Ticket.cancel`).
"""

from __future__ import annotations as _annotations

import json
import math
import random
from collections import deque
from typing import NamedTuple

import anyio

from optillm_core import GenerationSettings, Prompt, ToolDefinition

from ._clock import Clock

__all__ = (
    "DEFAULT_OUTPUT_TOKENS_ESTIMATE",
    "RATE_WINDOW_SECONDS",
    "PauseGate",
    "Paused",
    "ProviderLimits",
    "RateBudget",
    "Ticket",
    "TokenEstimate",
    "estimate_tokens",
)

RATE_WINDOW_SECONDS = 60.0
DEFAULT_OUTPUT_TOKENS_ESTIMATE = 512
"""Tokens reserved for the answer of a call that sets no ``max_tokens``."""
GATE_JITTER = 0.1
"""Callers leaving a pause spread over up to this fraction of it (at most a second) so they do not stampede."""
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4


class TokenEstimate(NamedTuple):
    """Tokens a request is expected to use, before it is sent."""

    input_tokens: int
    output_tokens: int

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


def estimate_tokens(prompt: Prompt, settings: GenerationSettings) -> TokenEstimate:
    """About four characters per token for the prompt; ``max_tokens`` (per choice) for the answer.

    The prompt counts its messages, the tool calls in them (names and arguments) and the tools
    offered (names, descriptions and argument schemas, as the JSON the provider reads).
    """
    messages = prompt.effective_messages()
    chars = 0
    for m in messages:  # one pass: this runs before every call of a limited or cost-ordered provider
        chars += len(m.content)
        if m.tool_calls:
            chars += sum(len(c.name) + len(c.arguments) for c in m.tool_calls)
    if settings.tools:
        chars += sum(_tool_chars(tool) for tool in settings.tools)
    prompt_tokens = -(-chars // CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS * len(messages)
    answer = settings.max_tokens or DEFAULT_OUTPUT_TOKENS_ESTIMATE
    return TokenEstimate(prompt_tokens, answer * settings.n)


def _tool_chars(tool: ToolDefinition) -> int:
    return len(tool.name) + len(tool.description or "") + len(json.dumps(tool.parameters, default=str))


class Paused(Exception):
    """Admission refused at once: the provider asked for a pause longer than the caller will wait."""

    def __init__(self, remaining: float) -> None:
        super().__init__(f"paused for another {remaining:.1f} s")
        self.remaining = remaining


class PauseGate:
    """A provider-wide pause: one ``retry-after`` holds back every caller until it has passed."""

    __slots__ = ("until",)

    def __init__(self) -> None:
        self.until = -math.inf

    def pause(self, now: float, seconds: float) -> None:
        self.until = max(self.until, now + seconds)

    def paused(self, now: float) -> bool:
        return now < self.until

    def remaining(self, now: float) -> float:
        return max(0.0, self.until - now)

    async def wait(self, clock: Clock, rng: random.Random) -> None:
        while (remaining := self.until - clock.now()) > 0:
            await clock.sleep(remaining + rng.random() * min(GATE_JITTER * remaining, 1.0))


class _Entry:
    __slots__ = ("at", "live", "tokens")

    def __init__(self, at: float, tokens: int) -> None:
        self.at = at
        self.tokens = tokens
        self.live = True


class RateBudget:
    """Requests per minute and tokens per minute over a sliding window of reservations."""

    def __init__(self, rpm: int | None, tpm: int | None, clock: Clock, *, window: float = RATE_WINDOW_SECONDS) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.window = window
        self._clock = clock
        self._entries: deque[_Entry] = deque()
        self._requests = 0
        self._tokens = 0
        self._lock = anyio.Lock()
        self._wake: anyio.Event | None = None

    @property
    def used(self) -> tuple[int, int]:
        """Requests and tokens reserved in the current window."""
        self._prune(self._clock.now())
        return self._requests, self._tokens

    async def reserve(self, tokens: int) -> _Entry:
        """Wait until one request and ``tokens`` fit the window, and reserve them."""
        if self.tpm is not None:
            tokens = min(tokens, self.tpm)
        if not self._lock.locked():
            now = self._clock.now()
            self._prune(now)
            if self._wait_time(now, tokens) <= 0:
                return self._add(now, tokens)
        async with self._lock:
            while True:
                now = self._clock.now()
                self._prune(now)
                wait = self._wait_time(now, tokens)
                if wait <= 0:
                    return self._add(now, tokens)
                await self._sleep(wait)

    def settle(self, entry: _Entry, tokens: int) -> None:
        """Replace a reservation's token estimate by the tokens really used."""
        if entry.live:
            self._tokens += tokens - entry.tokens
            freed = tokens < entry.tokens
            entry.tokens = tokens
            if freed:
                self._notify()

    def cancel(self, entry: _Entry) -> None:
        """Give back a reservation whose call was never sent."""
        if entry.live:
            entry.live = False
            self._requests -= 1
            self._tokens -= entry.tokens
            self._notify()

    def _add(self, now: float, tokens: int) -> _Entry:
        entry = _Entry(now, tokens)
        self._entries.append(entry)
        self._requests += 1
        self._tokens += tokens
        return entry

    def _prune(self, now: float) -> None:
        entries = self._entries
        horizon = now - self.window
        while entries and (not entries[0].live or entries[0].at <= horizon):
            entry = entries.popleft()
            if entry.live:
                entry.live = False
                self._requests -= 1
                self._tokens -= entry.tokens

    def _wait_time(self, now: float, tokens: int) -> float:
        excess_requests = self._requests + 1 - self.rpm if self.rpm is not None else 0
        excess_tokens = self._tokens + tokens - self.tpm if self.tpm is not None else 0
        if excess_requests <= 0 and excess_tokens <= 0:
            return 0.0
        freed_requests = freed_tokens = 0
        for entry in self._entries:
            if not entry.live:
                continue
            freed_requests += 1
            freed_tokens += entry.tokens
            if freed_requests >= excess_requests and freed_tokens >= excess_tokens:
                return max(entry.at + self.window - now, 1e-9)
        return self.window

    async def _sleep(self, seconds: float) -> None:
        """Sleep until the oldest reservations expire, or until one is settled lower or cancelled."""
        wake = self._wake = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def timer() -> None:
                await self._clock.sleep(seconds)
                tg.cancel_scope.cancel()

            tg.start_soon(timer)
            await wake.wait()
            tg.cancel_scope.cancel()

    def _notify(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = None


class Ticket:
    """An admitted call's hold on its provider's slot and rate reservation; :meth:`release` ends it."""

    __slots__ = ("_entry", "_limits", "_slot")

    def __init__(self, limits: ProviderLimits | None) -> None:
        self._limits = limits
        self._entry: _Entry | None = None
        self._slot = False

    def release(self, tokens_used: int | None = None) -> None:
        """Free the slot and settle the tokens (``None``: unknown, keep the estimate). Idempotent."""
        limits = self._limits
        if limits is None:
            return
        self._limits = None
        if self._entry is not None and tokens_used is not None and limits.rates is not None:
            limits.rates.settle(self._entry, tokens_used)
        if self._slot and limits.limiter is not None:
            limits.limiter.release_on_behalf_of(self)

    def cancel(self) -> None:
        """Give the reservation back whole (one request and its tokens): the call was never sent."""
        limits = self._limits
        if limits is not None and self._entry is not None and limits.rates is not None:
            limits.rates.cancel(self._entry)
            self._entry = None
        self.release()


_FREE = Ticket(None)


class ProviderLimits:
    """The pause gate, concurrency cap and rate budget of one provider."""

    def __init__(
        self,
        *,
        max_concurrency: int | None,
        rpm: int | None,
        tpm: int | None,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.gate = PauseGate()
        self.limiter = anyio.CapacityLimiter(max_concurrency) if max_concurrency is not None else None
        self.rates = RateBudget(rpm, tpm, clock) if rpm is not None or tpm is not None else None
        self.tracks_tokens = tpm is not None
        self._clock = clock
        self._rng = rng

    def admit_nowait(self, now: float) -> Ticket | None:
        """A ticket at no cost when nothing limits the provider now, else ``None`` (then :meth:`admit`)."""
        if self.limiter is None and self.rates is None and not self.gate.paused(now):
            return _FREE
        return None

    async def admit(self, tokens: int = 0, *, max_pause: float = math.inf) -> Ticket:
        """Wait for the gate, a slot and the rate budget; the caller must release or cancel the ticket.

        A pause longer than ``max_pause`` seconds raises :class:`Paused` at once, reserving nothing.
        """
        if (ticket := self.admit_nowait(self._clock.now())) is not None:
            return ticket
        while True:
            remaining = self.gate.remaining(self._clock.now())
            if remaining > max_pause:
                raise Paused(remaining)
            await self.gate.wait(self._clock, self._rng)
            ticket = Ticket(self)
            try:
                await self._take_slot(ticket)
                if self.rates is not None:
                    ticket._entry = await self.rates.reserve(tokens)
            except BaseException:
                ticket.cancel()
                raise
            if not self.gate.paused(self._clock.now()):
                return ticket
            ticket.cancel()

    async def _take_slot(self, ticket: Ticket) -> None:
        limiter = self.limiter
        if limiter is None:
            return
        try:
            limiter.acquire_on_behalf_of_nowait(ticket)
        except anyio.WouldBlock:
            await limiter.acquire_on_behalf_of(ticket)
        ticket._slot = True
