"""Phase 4: other agents review each solution; the required passes of a round run concurrently.

A solution is verified after ``verification_passes_required`` consecutive passing verdicts. The
passes a solution still needs are asked for all at once, each from a different verifier and angle,
and count only if every one of them passes: concurrent passes cost one round-trip instead of one
per pass, and "consecutive" still holds, since any failing verdict resets the count to zero.
"""

from __future__ import annotations as _annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from optillm_core import gather, split_thinking

from ._events import SolutionVerified, VerificationStarted
from ._prompts import VERIFIER_SYSTEM, verification_prompt
from ._session import MarsRun, settled
from ._types import MarsSolution, Verdict, VerificationResult

__all__ = ("ParsedVerdict", "parse_verdict", "verifiers_for", "verify", "verify_all")


async def verify_all(run: MarsRun, solutions: Sequence[MarsSolution]) -> list[MarsSolution]:
    """One verification round over ``solutions``, all concurrently; returns their new states."""
    run.round += 1
    run.ctx.phase(f"verification {run.round}")
    run.emit(VerificationStarted(round=run.round, num_solutions=len(solutions)))
    return await gather(partial(verify, run, s, run.round) for s in solutions)


async def verify(run: MarsRun, solution: MarsSolution, round_number: int) -> MarsSolution:
    """Ask for the passes ``solution`` still needs, concurrently; a failed call counts as not passed."""
    config = run.config
    needed = max(1, config.verification_passes_required - solution.consecutive_passes)
    verifiers = verifiers_for(solution.agent_id, config.num_agents, needed, round_number)
    replies = await settled(
        partial(_review, run, solution, verifier, round_number + index) for index, verifier in enumerate(verifiers)
    )
    results: list[VerificationResult] = []
    for verifier, reply in zip(verifiers, replies, strict=True):
        if isinstance(reply, Exception):
            run.failed("verification", reply, solution_id=solution.id, verifier_agent_id=verifier)
            parsed = ParsedVerdict(Verdict.UNCLEAR, 0.0, (), ())
            error: str | None = f"{type(reply).__name__}: {reply}"
        else:
            parsed, error = reply, None
        results.append(
            VerificationResult(
                solution_id=solution.id,
                revision=solution.revision,
                verifier_agent_id=verifier,
                round=round_number,
                verdict=parsed.verdict,
                score=parsed.score,
                issues=parsed.issues,
                suggestions=parsed.suggestions,
                error=error,
            )
        )
    updated = run.workspace.update(solution.with_round(tuple(results), config.verification_passes_required))
    for result in results:
        run.emit(
            SolutionVerified(
                solution_id=solution.id,
                verifier_agent_id=result.verifier_agent_id,
                is_correct=result.passed,
                verdict=result.verdict,
                score=result.score,
                is_verified=updated.is_verified,
            )
        )
    return updated


def verifiers_for(author: int, num_agents: int, count: int, round_number: int) -> list[int]:
    """``count`` verifier agents other than the author, rotating by round (the author only when alone)."""
    others = [(author + step) % num_agents for step in range(1, num_agents)] or [author]
    return [others[(round_number + index) % len(others)] for index in range(count)]


async def _review(run: MarsRun, solution: MarsSolution, verifier: int, angle: int) -> ParsedVerdict:
    completion = await run.ask(
        VERIFIER_SYSTEM,
        verification_prompt(run.query, solution, verifier, angle),
        run.config.verification_temperature,
    )
    return parse_verdict(completion.text)


# -- the verdict parser ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedVerdict:
    verdict: Verdict
    score: float
    issues: tuple[str, ...]
    suggestions: tuple[str, ...]


_MARKDOWN = re.compile(r"[*_`#>]+")
# In issue and suggestion text only emphasis goes: "x_1 > 0" must reach the author intact.
_EMPHASIS = re.compile(r"\*\*|__|`")
_FIELD = re.compile(r"^\s*([a-z][a-z ]{1,30}?)\s*[:：=—–-]\s*(.*)$", re.IGNORECASE)
_VERDICT_FIELDS = frozenset({"verdict", "result", "status", "assessment", "conclusion", "evaluation", "judgement"})
_VERDICT_FIELDS |= {"final verdict", "judgment", "overall verdict", "overall"}
_SCORE_FIELDS = frozenset({"score", "confidence", "rating", "confidence score"})
_ISSUE_FIELDS = frozenset({"issues", "issue", "problems", "errors", "mistakes", "issues found"})
_SUGGESTION_FIELDS = frozenset({"suggestions", "suggestion", "fixes", "recommendations", "improvements"})
_ALL_FIELDS = _VERDICT_FIELDS | _SCORE_FIELDS | _ISSUE_FIELDS | _SUGGESTION_FIELDS

_NEGATED_CORRECT = re.compile(
    r"\b(?:not|isn't|is not|wasn't|aren't|never|hardly)\s+(?:\w+\s+){0,2}?(?:correct|right|valid)\b"
)
_INCORRECT = re.compile(r"\b(?:incorrect|wrong|false|invalid|erroneous|flawed|fail(?:s|ed|ing)?|rejected?)\b")
_INCOMPLETE = re.compile(r"\b(?:incomplete|partial(?:ly)?|unfinished|insufficient|missing)\b")
_CORRECT = re.compile(r"\b(?:correct|valid|pass(?:es|ed)?|right|accepted?|verified)\b")
_NUMBER = re.compile(r"([0-9]*\.?[0-9]+)\s*(%|/\s*([0-9]*\.?[0-9]+)|out of\s*([0-9]*\.?[0-9]+))?", re.IGNORECASE)
_NONE_ITEMS = frozenset({"none", "n/a", "na", "no issues", "nothing", "no issues found", "-", "none found"})
_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*(.*)$")

# With several verdict lines, the most severe one stands.
_SEVERITY = (Verdict.INCORRECT, Verdict.INCOMPLETE, Verdict.CORRECT)
_DEFAULT_SCORES = {Verdict.CORRECT: 1.0, Verdict.INCOMPLETE: 0.5, Verdict.INCORRECT: 0.0, Verdict.UNCLEAR: 0.0}


def classify(phrase: str) -> Verdict | None:
    """The verdict a phrase states. Any negative reading wins, so "not correct" is never a pass."""
    text = _NEGATED_CORRECT.sub(" incorrect ", phrase.lower())
    if _INCORRECT.search(text):
        return Verdict.INCORRECT
    if _INCOMPLETE.search(text):
        return Verdict.INCOMPLETE
    if _CORRECT.search(text):
        return Verdict.CORRECT
    return None


def parse_verdict(text: str) -> ParsedVerdict:
    """Read a verifier's reply: verdict, score, issues and suggestions.

    The verdict comes from a ``VERDICT:`` (or ``Result:``, ``Assessment:`` …) line outside thinking
    tags, markdown stripped; without one, from the whole reply, where any negative word wins. A
    reply that states nothing is ``UNCLEAR``. Only ``CORRECT`` passes.
    """
    _, visible = split_thinking(text)
    fields = _fields(visible) or _fields(text)
    stated = {v for v in map(classify, fields.get("verdict", [])) if v is not None}
    verdict = next((v for v in _SEVERITY if v in stated), None)
    if verdict is None:
        verdict = classify(_MARKDOWN.sub(" ", visible or text)) or Verdict.UNCLEAR
    score = _score(fields.get("score", []))
    return ParsedVerdict(
        verdict=verdict,
        score=_DEFAULT_SCORES[verdict] if score is None else score,
        issues=_items(fields.get("issues", [])),
        suggestions=_items(fields.get("suggestions", [])),
    )


def _section(name: str) -> str | None:
    if name in _VERDICT_FIELDS:
        return "verdict"
    if name in _SCORE_FIELDS:
        return "score"
    if name in _ISSUE_FIELDS:
        return "issues"
    if name in _SUGGESTION_FIELDS:
        return "suggestions"
    return None


def _fields(text: str) -> dict[str, list[str]]:
    """Lines under each known header; a header's own value is the first line of its section."""
    fields: dict[str, list[str]] = {}
    current: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        match = _FIELD.match(_MARKDOWN.sub("", raw))
        section = _section(" ".join(match.group(1).lower().split())) if match else None
        if match and section is not None:
            current = section
            fields.setdefault(section, [])
            value = match.group(2).strip()
            if value:
                fields[section].append(value)
        elif current is not None and line and (current != "verdict" or not fields[current]):
            # A verdict is its header's value, or the first line under an empty header; what follows explains it.
            fields[current].append(line)
    return fields


def _score(lines: list[str]) -> float | None:
    for line in lines:
        match = _NUMBER.search(line)
        if match is None:
            continue
        value = float(match.group(1))
        denominator = match.group(3) or match.group(4)
        if match.group(2) == "%":
            value /= 100
        elif denominator and float(denominator) > 0:
            value /= float(denominator)
        elif value > 1:
            value /= 10 if value <= 10 else 100
        return min(1.0, max(0.0, value))
    return None


def _items(lines: list[str]) -> tuple[str, ...]:
    items = []
    for line in lines:
        match = _ITEM.match(line)
        item = _EMPHASIS.sub("", match.group(1) if match else line).strip().rstrip(".").strip()
        if item and item.lower() not in _NONE_ITEMS:
            items.append(item)
    return tuple(items)
