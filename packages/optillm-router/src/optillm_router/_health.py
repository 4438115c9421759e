"""A circuit breaker per route. A cooldown reorders routes; it never refuses a call.

After ``threshold`` consecutive failures a route cools down: the router tries it after the
others, and a call that has no other route left waits for the cooldown's end instead of failing.
Once the cooldown is over, the first call to reach the route is its probe; while the probe runs
other calls prefer other routes. A success closes the breaker.

A route that fails again while cooling down has its cooldown extended, never restarted: a failed
attempt adds one cooldown period to the end (at most ``max_cooldown`` ahead), and a failed probe
starts the next cooldown at twice the previous length (at most ``max_cooldown``). A router's only
route never cools down: there is nothing to move its calls to (as in LiteLLM, which never cools
down a model group's only deployment); backoff between retries protects it instead.
"""

from __future__ import annotations as _annotations

__all__ = ("Health",)


class Health:
    """Closed (healthy), open (cooling down until a time), or half-open (cooled down, one probe at a time).

    Every call admitted with :meth:`enter` ends in :meth:`succeeded`, :meth:`failed` or
    :meth:`abandoned`.
    """

    __slots__ = (
        "consecutive_failures",
        "cooldown",
        "cooling_until",
        "length",
        "max_cooldown",
        "probing",
        "sole",
        "threshold",
    )

    def __init__(self, threshold: int, cooldown: float, max_cooldown: float, *, sole: bool = False) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.max_cooldown = max(max_cooldown, cooldown)
        self.sole = sole
        self.consecutive_failures = 0
        self.cooling_until: float | None = None
        self.length = cooldown
        """Length of the current cooldown: doubles with every failed probe."""
        self.probing = False

    def available(self, now: float) -> bool:
        """Whether the route is a first choice now: healthy, or cooled down with no probe running."""
        until = self.cooling_until
        return until is None or (now >= until and not self.probing)

    def cooling(self, now: float) -> bool:
        until = self.cooling_until
        return until is not None and (now < until or self.probing)

    def remaining(self, now: float) -> float:
        """Seconds until the cooldown ends (0 when healthy, or cooled down with a probe running)."""
        return max(0.0, self.cooling_until - now) if self.cooling_until is not None else 0.0

    def enter(self, now: float) -> bool:
        """Admit a call; true when it is the probe after a cooldown. Never refuses."""
        until = self.cooling_until
        if until is None or now < until or self.probing:
            return False
        self.probing = True
        return True

    def succeeded(self, probe: bool) -> None:
        self.consecutive_failures = 0
        self.cooling_until = None
        self.length = self.cooldown
        if probe:
            self.probing = False

    def failed(self, now: float, probe: bool) -> bool:
        """Count a failure; returns whether the route is cooling down after it."""
        self.consecutive_failures += 1
        if probe:
            self.probing = False
        if self.sole:
            return False
        until = self.cooling_until
        if until is None:
            if self.consecutive_failures < self.threshold:
                return False
            self.cooling_until = now + self.cooldown
        elif probe:
            self.length = min(self.length * 2, self.max_cooldown)
            self.cooling_until = max(until, now + self.length)
        else:
            self.cooling_until = min(max(until, now) + self.cooldown, now + self.max_cooldown)
        return True

    def abandoned(self, probe: bool) -> None:
        """The call ended without telling anything about the route's health (cancelled, bad request)."""
        if probe:
            self.probing = False
