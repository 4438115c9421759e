"""A circuit breaker per provider: cool down after consecutive failures, then let one probe decide."""

from __future__ import annotations as _annotations

__all__ = ("Health",)


class Health:
    """Closed (healthy), open (cooling down until a time), or half-open (one probe request in flight).

    :meth:`enter` admits a call: ``False`` for a normal call, ``True`` when this call is the probe
    after a cooldown, ``None`` while cooling down or while another call probes. Every admitted
    call ends in :meth:`succeeded`, :meth:`failed` or :meth:`abandoned`.
    """

    __slots__ = ("consecutive_failures", "cooldown", "cooling_until", "probing", "threshold")

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.consecutive_failures = 0
        self.cooling_until: float | None = None
        self.probing = False

    def available(self, now: float) -> bool:
        """Whether a call could be admitted now (healthy, or cooled down with no probe running)."""
        until = self.cooling_until
        return until is None or (now >= until and not self.probing)

    def cooling(self, now: float) -> bool:
        until = self.cooling_until
        return until is not None and (now < until or self.probing)

    def remaining(self, now: float) -> float:
        """Seconds until the cooldown ends (0 when healthy or when only a probe is running)."""
        return max(0.0, self.cooling_until - now) if self.cooling_until is not None else 0.0

    def enter(self, now: float) -> bool | None:
        if self.cooling_until is None:
            return False
        if now < self.cooling_until or self.probing:
            return None
        self.probing = True
        return True

    def succeeded(self, probe: bool) -> None:
        self.consecutive_failures = 0
        self.cooling_until = None
        if probe:
            self.probing = False

    def failed(self, now: float, probe: bool) -> bool:
        """Count a failure; returns whether the provider (re)starts cooling down."""
        self.consecutive_failures += 1
        if probe:
            self.probing = False
            self.cooling_until = now + self.cooldown
            return True
        if self.cooling_until is None and self.consecutive_failures >= self.threshold:
            self.cooling_until = now + self.cooldown
            return True
        return False

    def abandoned(self, probe: bool) -> None:
        """The call ended without telling anything about the provider's health (cancelled, bad request)."""
        if probe:
            self.probing = False
