"""Reading a verifier's reply: its verdict, score, issues and suggestions, as models really write them.

The verdict is the first verdict word of the reply's verdict statement ("Verdict: Correct – no
step fails" is a pass, "VERDICT: CORRECT (missing case trivial)" too), so explanations after it
never overturn it. A verdict statement is a ``VERDICT:`` line (markdown, LaTeX and case aside),
a line holding only a verdict ("**INCORRECT**", ``\\boxed{\\text{CORRECT}}``), or a sentence such
as "my verdict is CORRECT". Weaker headers (``Result:``, ``Assessment:`` …) count only where no
such statement exists, and a copy of the requested format ("CORRECT, INCORRECT or INCOMPLETE")
states nothing. A reply with no statement at all is read whole, where any negative word wins,
since prose that mentions a flaw must never pass. Thinking is never read. The score is
the rating line (the prompt asks for ``RATING: N/10``) read by the toolkit's
:func:`~optillm_core.toolkit.parse_rating`, so a verifier's number means what it means to every
other strategy; the rest of the reply is not read for it, since a review cites the solution's numbers.
"""

from __future__ import annotations as _annotations

import re
from dataclasses import dataclass
from functools import cache

from optillm_core.toolkit import parse_rating, split_thinking

from ._types import Verdict

__all__ = ("ParsedVerdict", "classify", "leading_verdict", "parse_verdict")


@dataclass(frozen=True)
class ParsedVerdict:
    verdict: Verdict
    score: float
    issues: tuple[str, ...]
    suggestions: tuple[str, ...]


_STRONG_VERDICT_FIELDS = frozenset({"verdict", "final verdict", "overall verdict", "my verdict", "verdict line"})
_WEAK_VERDICT_FIELDS = frozenset(
    {"result", "status", "assessment", "conclusion", "evaluation", "judgement", "judgment", "overall"}
) | {"final assessment", "overall assessment", "final judgement", "final judgment", "decision"}
_SCORE_FIELDS = frozenset({"score", "confidence", "rating", "confidence score"})
_ISSUE_FIELDS = frozenset({"issues", "issue", "problems", "errors", "mistakes", "issues found"})
_SUGGESTION_FIELDS = frozenset({"suggestions", "suggestion", "fixes", "recommendations", "improvements"})
_NONE_ITEMS = frozenset({"none", "n/a", "na", "no issues", "nothing", "no issues found", "-", "none found"})

_NEGATIVE_WORDS = (
    r"incorrect|wrong|false|invalid|erroneous|flawed|fail(?:s|ed|ing|ure)?|rejected?|incomplete|partial(?:ly)?"
    r"|unfinished|insufficient|missing|errors?|mistakes?|issues?|gaps?|problems?"
)
_KEYWORD = r"(?:in)?correct|incomplete"
# The requested format copied back: "CORRECT, INCORRECT or INCOMPLETE", "correct / incorrect".
_ECHO = rf"\b(?:{_KEYWORD})\s*(?:,|/|\||\bor\b)\s*(?:{_KEYWORD})\b"


class _Patterns:
    """The reader's regular expressions, compiled when the first reply is read: compiling them
    at import was a quarter of what importing the package adds to core."""

    def __init__(self) -> None:
        self.markdown = re.compile(r"[*_`#>]+")
        self.latex = re.compile(r"\\(?:boxed|text|textbf|mathrm|mathbf)\s*\{|[{}$]")
        # In issue and suggestion text only emphasis goes: "x_1 > 0" must reach the author intact.
        self.emphasis = re.compile(r"\*\*|__|`")
        self.field = re.compile(r"^\s*([a-z][a-z ]{1,30}?)\s*(?:[:：=—–-]\s*(.*)|)$", re.IGNORECASE)
        self.verdict_sentence = re.compile(r"\bverdict\s*(?:is|would be|:)\s*:?\s*(\S.*)$", re.IGNORECASE)
        self.negated_correct = re.compile(
            r"\b(?:not|isn't|is not|wasn't|aren't|never|hardly)\s+(?:\w+\s+){0,2}?(?:correct|right|valid)\b"
        )
        # "no step fails", "nothing is missing", "without errors": a denied flaw is not a flaw.
        self.denied_negative = re.compile(
            rf"\b(?:no|not|nothing|never|without|none of)\s+(?:\w+\s+){{0,2}}?(?:{_NEGATIVE_WORDS})\b"
        )
        self.template_echo = re.compile(_ECHO, re.IGNORECASE)
        self.leading_echo = re.compile(rf"^\W*{_ECHO}", re.IGNORECASE)
        self.bare_verdict = re.compile(
            r"^(?:(?:final|my|overall)\s+)?(?:verdict\s+)?"
            r"(?:incorrect|correct|incomplete|wrong|not\s+correct|partially\s+correct)$"
        )
        self.punctuation = re.compile(r"[^\w\s]")
        self.item = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*(.*)$")
        self.bullet = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S")
        # Verdict words in the order they win: any negative reading beats a pass.
        self.verdict_words = (
            (
                Verdict.INCORRECT,
                re.compile(r"\b(?:incorrect|wrong|false|invalid|erroneous|flawed|fail(?:s|ed|ing)?|rejected?)\b"),
            ),
            (Verdict.INCOMPLETE, re.compile(r"\b(?:incomplete|partial(?:ly)?|unfinished|insufficient|missing)\b")),
            (Verdict.CORRECT, re.compile(r"\b(?:correct|valid|pass(?:es|ed)?|right|accepted?|verified)\b")),
        )


@cache
def _patterns() -> _Patterns:
    return _Patterns()


# With several verdict statements of equal standing, the most severe one stands.
_SEVERITY = (Verdict.INCORRECT, Verdict.INCOMPLETE, Verdict.CORRECT)
_DEFAULT_SCORES = {Verdict.CORRECT: 1.0, Verdict.INCOMPLETE: 0.5, Verdict.INCORRECT: 0.0, Verdict.UNCLEAR: 0.0}


def parse_verdict(text: str) -> ParsedVerdict:
    """Read a verifier's reply: verdict, score, issues and suggestions (see the module for the rules).

    Only text outside ``<think>`` tags is read. A reply that states nothing is ``UNCLEAR``; only
    ``CORRECT`` passes. The score is the toolkit's :func:`~optillm_core.toolkit.parse_rating` of
    the reply's rating line (``RATING:``, ``Score:``, ``Confidence:``) on the asked scale of 10
    (``8/10``, ``8``, ``0.8``, ``80%``: 0.8), the reading every strategy gives a judge's number; a
    reply with no readable rating gets its verdict's default (1 correct, 0.5 incomplete, else 0).
    """
    _, visible = split_thinking(text)
    echo = _patterns().template_echo
    fields = _fields(visible)
    statements = fields.get("verdict") or fields.get("weak verdict") or []
    stated = {v for v in map(leading_verdict, statements) if v is not None}
    verdict = next((v for v in _SEVERITY if v in stated), None)
    if verdict is None:
        verdict = classify(_plain("\n".join(line for line in visible.splitlines() if not echo.search(line))))
    verdict = verdict or Verdict.UNCLEAR
    # Only the rating's own lines: the rest of a review discusses the solution's numbers ("should be 20").
    rating = fields.get("score", [])
    score = parse_rating("\n".join(rating), scale=10) if rating else None
    return ParsedVerdict(
        verdict=verdict,
        score=_DEFAULT_SCORES[verdict] if score is None else score,
        issues=_items(fields.get("issues", [])),
        suggestions=_items(fields.get("suggestions", [])),
    )


def leading_verdict(statement: str) -> Verdict | None:
    """The verdict a statement opens with: its first verdict word, a denial such as "not correct" included."""
    patterns = _patterns()
    if patterns.leading_echo.search(_plain(statement)):
        return None
    text = _normalised(statement)
    found = [(m.start(), v) for v, pattern in patterns.verdict_words for m in [pattern.search(text)] if m is not None]
    return min(found, key=lambda item: item[0])[1] if found else None


def classify(phrase: str) -> Verdict | None:
    """The verdict free prose states: any negative reading wins, so "not correct" is never a pass."""
    text = _normalised(phrase)
    for verdict, pattern in _patterns().verdict_words:
        if pattern.search(text):
            return verdict
    return None


def _normalised(phrase: str) -> str:
    patterns = _patterns()
    text = patterns.negated_correct.sub(" incorrect ", _plain(phrase).lower())
    return patterns.denied_negative.sub(" ", text)


def _plain(text: str) -> str:
    patterns = _patterns()
    return patterns.latex.sub(" ", patterns.markdown.sub(" ", text))


def _section(name: str) -> str | None:
    if name in _STRONG_VERDICT_FIELDS:
        return "verdict"
    if name in _WEAK_VERDICT_FIELDS:
        return "weak verdict"
    if name in _SCORE_FIELDS:
        return "score"
    if name in _ISSUE_FIELDS:
        return "issues"
    if name in _SUGGESTION_FIELDS:
        return "suggestions"
    return None


def _fields(text: str) -> dict[str, list[str]]:
    """Lines under each known header, plus verdict statements found anywhere.

    A header's own value is the first line of its section; a verdict is its header's value, or the
    first line under an empty header, and what follows explains it.
    """
    field = _patterns().field
    fields: dict[str, list[str]] = {}
    current: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        plain = _plain(raw).strip()
        match = field.match(plain)
        section = _section(" ".join(match.group(1).lower().split())) if match else None
        if match and section is not None:
            current = section
            fields.setdefault(section, [])
            value = _header_value(raw, section) or (match.group(2) or "").strip()
            if value:
                fields[section].append(value)
        elif (statement := _statement(line, plain)) is not None:
            fields.setdefault("verdict", []).append(statement)
        elif current is not None and line and (current not in ("verdict", "weak verdict") or not fields[current]):
            fields[current].append(line)
    return fields


def _header_value(raw: str, section: str) -> str | None:
    """An issue or suggestion on its header's own line, with only emphasis taken off (math stays)."""
    if section not in ("issues", "suggestions"):
        return None
    patterns = _patterns()
    match = patterns.field.match(patterns.emphasis.sub("", raw))
    return (match.group(2) or "").strip() if match else None


def _statement(line: str, plain: str) -> str | None:
    """The verdict a line states outside a header: a line holding only a verdict, or "my verdict is …"."""
    patterns = _patterns()
    if patterns.bullet.match(line):
        return None  # a bullet is an item of a list, not the reply's verdict
    if patterns.bare_verdict.match(" ".join(patterns.punctuation.sub(" ", plain).lower().split())):
        return plain
    sentence = patterns.verdict_sentence.search(plain)
    return sentence.group(1) if sentence else None


def _items(lines: list[str]) -> tuple[str, ...]:
    patterns = _patterns()
    items = []
    for line in lines:
        match = patterns.item.match(line)
        item = patterns.emphasis.sub("", match.group(1) if match else line).strip().rstrip(".").strip()
        if item and item.lower() not in _NONE_ITEMS:
            items.append(item)
    return tuple(items)
