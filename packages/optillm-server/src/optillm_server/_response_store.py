"""The in-process store of Responses API answers, for ``previous_response_id`` and ``GET /v1/responses/{id}``.

Bounded in count and age (:class:`~optillm_server.ServerLimits`' ``max_stored_responses`` and
``stored_response_seconds``): the oldest response is evicted when the store is full, and a
response older than the age limit is gone. The store lives in one server process and is lost when
it stops; a client that needs more keeps the conversation itself (as Codex does, with ``store: false``).
"""

from __future__ import annotations as _annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from optillm_core import Message

__all__ = ("ResponseStore", "StoredResponse")


@dataclass(frozen=True)
class StoredResponse:
    """A finished response: its object as the client got it, and the turns a follow-up continues from."""

    payload: Mapping[str, Any]
    turns: tuple[Message, ...]
    stored_at: float


class ResponseStore:
    """Responses by id, at most ``max_entries`` of them, each for ``max_age`` seconds (``now`` is injectable)."""

    def __init__(self, max_entries: int, max_age: float, now: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()
        self._max_entries = max_entries
        self._max_age = max_age
        self._now = now

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, response_id: str, payload: Mapping[str, Any], turns: tuple[Message, ...]) -> None:
        if self._max_entries == 0:
            return
        self._entries[response_id] = StoredResponse(payload, turns, self._now())
        self._entries.move_to_end(response_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def get(self, response_id: str) -> StoredResponse | None:
        """The response, or ``None`` when it was never stored, was evicted or is older than the age limit."""
        entry = self._entries.get(response_id)
        if entry is None:
            return None
        if self._now() - entry.stored_at > self._max_age:
            del self._entries[response_id]
            return None
        return entry
