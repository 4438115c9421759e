"""Voting over sampled replies: one key per reply (its answer, or the tools it calls) and a plurality vote.

The vote's tie rule ignores the order of the samples.
"""

from __future__ import annotations as _annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._extract import extract_answer, extract_boxed, normalize_answer, split_thinking
from ._tools import ToolCall

__all__ = (
    "MAX_PHRASE_WORDS",
    "Vote",
    "answer_key",
    "canonical_arguments",
    "plurality_vote",
    "render_reply",
    "reply_key",
    "tie_order",
    "tool_calls_key",
)

MAX_PHRASE_WORDS = 8
"""A reply of one line with at most this many words is taken as its own answer ("Paris", "No, it is not.")."""

_EMPHASIS = "*_`"
_NUMERAL = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?"
_NUMBER = re.compile(rf"(?<![\w.]){_NUMERAL}(?![\w])")
_EQUALS = r"(?:=|\bequals\b|\bis\s+equal\s+to\b)"
_RESULT = re.compile(rf"{_EQUALS}\s*\$?\s*({_NUMERAL})(?![\w])", re.IGNORECASE)
_FINAL_RESULT = re.compile(rf"{_EQUALS}\s*\$?\s*({_NUMERAL})\s*\$?\W*$", re.IGNORECASE)
_CLAUSE_END = re.compile(r"[,;:]\s|\.\s|\s[-–—]\s")
# Words that lead into an answer without being part of it: "The answer is indeed 9".
_LEAD_IN = re.compile(
    r"^(?:(?:indeed|actually|simply|just|exactly|clearly|therefore|thus|so|then|definitely|obviously|precisely)\b[\s,]*)+",
    re.IGNORECASE,
)


def answer_key(text: str) -> str | None:
    """The normalised final answer ``text`` gives, to vote with, or ``None`` when none can be read.

    In order: the last ``\\boxed{}``; the phrase after the last final-answer marker ("The answer
    is", "Final answer:"); the whole reply when it is one line of at most :data:`MAX_PHRASE_WORDS`
    words; on the last line, the number after its last ``=`` (or "equals"), else its only number;
    the number after the reply's last ``=``. A phrase ending in ``= <number>`` gives that number, a
    long phrase its first clause (the number in it, when it holds one), and lead-in words
    ("indeed", "simply", "therefore"…) go: "The answer is indeed 9, which is…" gives "9". Every key
    is :func:`normalize_answer`'s form, so "19", "19.0", "$19$" and "12 + 7 = 19" agree. Thinking
    (``<think>…</think>``) is never read.
    """
    visible = split_thinking(text)[1]
    boxed = extract_boxed(visible)
    if boxed:
        return _normalized(boxed) or None
    marked = extract_answer(visible)
    if marked is not None:
        key = _phrase_key(marked)
        if key:
            return key
    lines = [line.strip() for line in visible.splitlines() if line.strip()]
    if not lines:
        return None
    if len(lines) == 1 and len(lines[0].split()) <= MAX_PHRASE_WORDS:
        return _phrase_key(lines[0])
    results = _RESULT.findall(lines[-1])
    if results:
        return _normalized(results[-1])
    numbers = {_normalized(match) for match in _NUMBER.findall(lines[-1])}
    if len(numbers) == 1:
        return numbers.pop()
    results = _RESULT.findall(visible)
    return _normalized(results[-1]) if results else None


def _phrase_key(phrase: str) -> str | None:
    """A final-answer phrase cut down to its answer (see :func:`answer_key`)."""
    phrase = _LEAD_IN.sub("", phrase.strip().strip(_EMPHASIS).strip())
    result = _FINAL_RESULT.search(phrase)
    if result is not None:
        return _normalized(result.group(1))
    if len(phrase.split()) <= MAX_PHRASE_WORDS:
        return _normalized(phrase) or None
    clause = _CLAUSE_END.split(phrase, maxsplit=1)[0]
    numbers = _NUMBER.findall(clause)
    if len(numbers) == 1:
        return _normalized(numbers[0])
    return _normalized(clause) or None if len(clause.split()) <= MAX_PHRASE_WORDS else None


def _normalized(answer: str) -> str:
    return normalize_answer(answer.strip().strip(_EMPHASIS))


@dataclass(frozen=True)
class Vote:
    """The outcome of a plurality vote.

    ``counts`` lists every answer with its votes, the winner first, then by votes and the tie rule;
    ``tied`` holds the answers that shared the top count when more than one did (the winner first);
    ``abstained`` counts the ballots with no answer.
    """

    winner: str | None
    counts: tuple[tuple[str, int], ...]
    tied: tuple[str, ...]
    abstained: int

    @property
    def tie(self) -> bool:
        return len(self.tied) > 1

    @property
    def votes(self) -> int:
        """Ballots that named an answer."""
        return sum(count for _, count in self.counts)

    @property
    def winner_votes(self) -> int:
        return self.counts[0][1] if self.counts else 0

    def support(self, key: str | None) -> int:
        """How many ballots named ``key`` (0 for ``None``)."""
        return next((count for answer, count in self.counts if answer == key), 0) if key is not None else 0

    def summary(self) -> str:
        """One line for logs and reasoning, such as ``19 ×3, 20 ×3, no answer ×1; a tie between 19, 20, …``."""
        parts = [f"{_short(answer)} ×{count}" for answer, count in self.counts]
        if self.abstained:
            parts.append(f"no answer ×{self.abstained}")
        line = ", ".join(parts) or "no ballots"
        if self.tie:
            line += f"; a tie between {', '.join(_short(a) for a in self.tied)}, settled by the fixed tie order"
        return line


def _short(answer: str, limit: int = 40) -> str:
    return answer if len(answer) <= limit else answer[: limit - 1] + "…"


def tie_order(answer: str) -> bytes:
    """The tie rule's order: the SHA-256 digest of the normalised answer, smallest first.

    It is fixed, depends on neither the order of the samples nor how often each was drawn, and
    favours no kind of answer, so over many questions a tie is settled as by a fair coin.
    """
    return hashlib.sha256(answer.encode("utf-8")).digest()


def plurality_vote(keys: Iterable[str | None]) -> Vote:
    """The answer named by the most ballots (``None`` abstains); ties go by :func:`tie_order`.

    The result depends only on how many ballots named each answer, never on their order.
    """
    ballots: Sequence[str | None] = list(keys)
    counted = Counter(key for key in ballots if key is not None)
    ranked = sorted(counted.items(), key=lambda item: (-item[1], tie_order(item[0])))
    abstained = sum(1 for key in ballots if key is None)
    if not ranked:
        return Vote(winner=None, counts=(), tied=(), abstained=abstained)
    top = ranked[0][1]
    tied = tuple(answer for answer, count in ranked if count == top)
    return Vote(winner=ranked[0][0], counts=tuple(ranked), tied=tied if len(tied) > 1 else (), abstained=abstained)


# -- replies that call tools ---------------------------------------------------------------------------


def canonical_arguments(arguments: str) -> str:
    """A tool call's JSON arguments in one canonical form, so that calls meaning the same compare equal.

    Object keys are sorted, whitespace goes, a whole float is its integer (``2.0`` is ``2``) and
    an empty text is ``{}``; strings are kept exactly. Text that is not JSON is kept, stripped.
    """
    if not arguments.strip():
        return "{}"
    try:
        value = json.loads(arguments)
    except ValueError:
        return arguments.strip()
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def tool_calls_key(calls: Sequence[ToolCall]) -> str:
    """The key of a reply that calls tools: each called tool with its canonical arguments, in any order.

    Two replies have the same key when they call the same tools with the same arguments (ids and
    the order of parallel calls do not count): its_hub's tool voting.
    """
    called = sorted(f"{call.name}({canonical_arguments(call.arguments)})" for call in calls)
    return "tool call: " + "; ".join(called)


def reply_key(text: str, calls: Sequence[ToolCall] = ()) -> str | None:
    """What a reply says, to vote with: its tool calls' key when it calls tools, else its :func:`answer_key`."""
    return tool_calls_key(calls) if calls else answer_key(text)


def render_reply(text: str, calls: Sequence[ToolCall] = ()) -> str:
    """A reply as a judge reads it: its text, then each tool call it makes with its arguments."""
    lines = [text.strip()] if text.strip() else []
    lines += [f"[calls the tool `{call.name}` with arguments {call.arguments.strip() or '{}'}]" for call in calls]
    return "\n".join(lines)
