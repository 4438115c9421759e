"""Finding and comparing final answers in model output, shared by every strategy."""

from __future__ import annotations as _annotations

import re
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache

from ._errors import AnswerExtractionError

__all__ = (
    "answers_equal",
    "apply_stop",
    "extract_answer",
    "extract_boxed",
    "normalize_answer",
    "require_answer",
    "split_thinking",
)

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"[{}]")
_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
# "Final answer:", "**Answer:**", "The answer is", "the final answer is:": the word "answer" on its own
# (not "answers", not "another"), then a colon or "is". Bold markup may close between them. Every
# repetition is followed by something it cannot match, so a long run of spaces costs linear time.
_MARKER = re.compile(r"(?<![\w-])(?:final\s+)?answer\b[ \t]*(?:\*+[ \t]*)?(?:[:：]|is\b[ \t]*[:：]?)", re.IGNORECASE)
# A heading that is the marker alone ("**Final Answer**", "## Answer:"): the answer is on the next line.
_HEADINGS = frozenset({"answer", "final answer"})
# Where the answer's sentence ends: a full stop, "!", "?", ";" or an ellipsis before more text, or a clause
# giving the reason ("42, because ..."). A decimal point ("3.14") is followed by a digit, so it is not an end.
_SENTENCE_END = re.compile(
    r"(?:\.\.\.|…|[.!?;])(?=\s)|,?(?<!\s)\s+(?:because|since)\b|,\s+(?:which|as|so|given)\b", re.IGNORECASE
)
_MARKUP = " \t\r\n*`"
_OPTION = re.compile(r"\(([A-Za-z])\)")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$", re.IGNORECASE)
_FRACTION = re.compile(r"^([+-]?\d+)\s*/\s*([+-]?\d+)$")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_TEXT_WRAPPER = re.compile(r"\\(?:text|mathrm|textbf|mathbf)\s*\{([^{}]*)\}")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")
_PARENTHESISED_FRACTION = re.compile(r"\(([^()]*)\)/\(([^()]*)\)")
# Votes and comparisons normalise the same short answers over and over; long texts are not kept.
_CACHED_ANSWER_LENGTH = 200


def _closing_braces(text: str, start: int = 0) -> dict[int, int]:
    """The index of the brace closing each ``{`` from ``start`` on that is closed, in one pass over the braces.

    Braces before ``start`` cannot close one after it, so a scan from the first ``\\boxed{`` on
    pairs those the same way as a scan of the whole text.
    """
    closes: dict[int, int] = {}
    opened: list[int] = []
    for match in _BRACE.finditer(text, start):
        index = match.start()
        if text[index] == "{":
            opened.append(index)
        elif opened:
            closes[opened.pop()] = index
    return closes


def _closing_brace(text: str, open_index: int) -> int | None:
    """The index of the brace closing the ``{`` at ``open_index``, or ``None`` when it is never closed."""
    depth = 0
    for match in _BRACE.finditer(text, open_index):
        if text[match.start()] == "{":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return match.start()
    return None


def extract_boxed(text: str) -> str | None:
    """The content of the last complete ``\\boxed{...}`` (nested braces allowed), or ``None``."""
    last_at = max(text.rfind("\\boxed"), text.rfind("\\fbox"))  # a substring search, no regex
    if last_at == -1:
        return None
    # Usually the last box is complete: its closing brace is where the depth, counted from its own
    # opening brace, first returns to zero (braces before it cannot close it), a scan of its content.
    last = _BOXED.match(text, last_at)
    if last is not None:
        close = _closing_brace(text, last.end() - 1)
        if close is not None:
            return text[last.end() : close].strip()
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    closes = _closing_braces(text, matches[0].start())
    for match in reversed(matches):
        open_index = match.end() - 1
        close = closes.get(open_index)
        if close is not None:
            return text[open_index + 1 : close].strip()
    return None


def split_thinking(text: str) -> tuple[str, str]:
    """Split ``<think>…</think>`` reasoning from the rest: ``(thinking, answer_text)``.

    An unclosed ``<think>`` makes everything after it thinking; a lone ``</think>`` (some models
    omit the opening tag) makes everything before it thinking.
    """
    close = text.rfind(_THINK_CLOSE)
    if close != -1:
        before, after = text[:close], text[close + len(_THINK_CLOSE) :]
        open_index = before.find(_THINK_OPEN)
        thinking = before[open_index + len(_THINK_OPEN) :] if open_index != -1 else before
        prefix = before[:open_index] if open_index != -1 else ""
        return thinking.strip(), (prefix + after).strip()
    open_index = text.find(_THINK_OPEN)
    if open_index != -1:
        return text[open_index + len(_THINK_OPEN) :].strip(), text[:open_index].strip()
    return "", text.strip()


class VisibleTextStream:
    """The text outside thinking tags of a reply that arrives in pieces, passed on as soon as it is known.

    Feed each piece; the pieces returned join up to ``split_thinking(text)[1]``. Nothing is passed on
    until ``</think>`` arrives (before it, any text may still turn out to be thinking), whitespace at
    either end is held back, and a reply with no ``</think>`` passes nothing on. Only a reply with
    a second ``</think>`` ends with a different visible text than the one passed on.
    """

    def __init__(self) -> None:
        self._text = ""
        self._visible = False
        self._begun = False
        self._pending = ""

    def feed(self, piece: str) -> str:
        if self._visible:
            return self._release(piece)
        searched_from = max(0, len(self._text) - len(_THINK_CLOSE) + 1)
        self._text += piece
        close = self._text.find(_THINK_CLOSE, searched_from)
        if close == -1:
            return ""
        self._visible = True
        before, after = self._text[:close], self._text[close + len(_THINK_CLOSE) :]
        open_index = before.find(_THINK_OPEN)
        self._text = ""
        return self._release((before[:open_index] if open_index != -1 else "") + after)

    def _release(self, raw: str) -> str:
        """``raw`` less leading whitespace of the whole text and whitespace that may turn out to be trailing."""
        if not self._begun:
            raw = raw.lstrip()
            if not raw:
                return ""
            self._begun = True
        body = raw.rstrip()
        if not body:
            self._pending += raw
            return ""
        released, self._pending = self._pending + body, raw[len(body) :]
        return released


def extract_answer(text: str) -> str | None:
    """The final answer in a model's text, or ``None``.

    Only the text outside thinking tags counts: what a model considered while thinking is not its
    answer. The last complete ``\\boxed{}`` wins; else the last final-answer marker that is followed
    by an answer: "Final answer:", "Answer:", "The answer is" (the word "answer" on its own, then a
    colon or "is"), or a heading such as "**Final Answer**" with the answer on the next line. The
    answer runs to the end of its sentence ("42. I hope this helps." gives "42"), without bold or
    code markup, a trailing full stop, or the parentheses of a lone option letter ("(B)" gives "B").
    """
    visible = split_thinking(text)[1]
    boxed = extract_boxed(visible)
    if boxed:
        return boxed
    ends = sorted({m.end() for m in _MARKER.finditer(visible)} | set(_heading_ends(visible)))
    for end in reversed(ends):
        answer = _answer_after(visible, end)
        if answer:
            return answer
    return None


def _heading_ends(text: str) -> list[int]:
    """Where each line that is only a final-answer heading ends."""
    ends, position = [], 0
    for line in text.split("\n"):
        label = line.strip().lstrip("#").strip(" \t*").rstrip(":：").strip(" \t*")
        if " ".join(label.split()).lower() in _HEADINGS:
            ends.append(position + len(line))
        position += len(line) + 1
    return ends


def _answer_after(text: str, start: int) -> str:
    """The answer after a marker ending at ``start``: the rest of its line, or the next line when that is empty."""
    lines = text[start:].split("\n")
    answer = _clean_answer(lines[0])
    if answer:
        return answer
    following = next((line for line in lines[1:] if line.strip()), "")
    return _clean_answer(following)


def _clean_answer(line: str) -> str:
    end = _SENTENCE_END.search(line)
    answer = line[: end.start()] if end is not None else line
    while True:
        trimmed = answer.strip(_MARKUP).removesuffix(".").strip(_MARKUP)
        if trimmed == answer:
            break
        answer = trimmed
    option = _OPTION.fullmatch(answer)
    return option.group(1) if option is not None else answer


def require_answer(text: str) -> str:
    """Like :func:`extract_answer`, but raise :class:`AnswerExtractionError` when there is none."""
    answer = extract_answer(text)
    if answer is None:
        preview = text.strip()[:80]
        raise AnswerExtractionError(f"no final answer found in model output starting {preview!r}")
    return answer


def _canonical_number(text: str) -> str | None:
    compact = text.replace(" ", "")
    fraction = _FRACTION.match(compact)
    try:
        if fraction is not None:
            value = Fraction(int(fraction.group(1)), int(fraction.group(2)))
        elif _NUMBER.match(compact):
            value = Fraction(compact)
        else:
            return None
    except (ValueError, ZeroDivisionError):
        return None
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


def normalize_answer(answer: str) -> str:
    """A canonical form for comparing answers: "19", "19.0", "$19$" and "\\boxed{19}" all give "19".

    Strips math delimiters, ``\\text{}`` wrappers, thousands separators and a trailing period;
    numbers (including fractions and ``\\frac``) become an integer or a reduced ``p/q``; other
    text is lower-cased with single spaces.
    """
    if len(answer) <= _CACHED_ANSWER_LENGTH:
        return _normalize_short(answer)
    return _normalize(answer)


@lru_cache(maxsize=4096)
def _normalize_short(answer: str) -> str:
    return _normalize(answer)


def _normalize(answer: str) -> str:
    text = answer.strip()
    boxed = extract_boxed(text)
    if boxed is not None:
        text = boxed
    text = text.replace("$", "").replace("\\(", "").replace("\\)", "").replace("\\[", "").replace("\\]", "")
    text = _TEXT_WRAPPER.sub(r"\1", text)
    text = _LATEX_FRAC.sub(r"(\1)/(\2)", text)
    text = text.replace("\\!", "").replace("\\,", "").replace("^\\circ", "").replace("°", "")
    text = _THOUSANDS.sub("", text)
    text = text.strip().rstrip(".").strip()
    simple_fraction = _PARENTHESISED_FRACTION.fullmatch(text)
    if simple_fraction is not None:
        text = f"{simple_fraction.group(1)}/{simple_fraction.group(2)}"
    number = _canonical_number(text)
    if number is not None:
        return number
    return " ".join(text.lower().split())


def answers_equal(a: str, b: str) -> bool:
    """Whether two answers are the same after :func:`normalize_answer`."""
    return normalize_answer(a) == normalize_answer(b)


def apply_stop(text: str, stop: Sequence[str] | None) -> str:
    """``text`` cut before the first of the caller's stop sequences, as a provider would have cut it.

    For an answer a strategy returns that was generated without the caller's ``stop`` (a sample a
    vote picked); a ``final`` call gets ``stop`` on the wire and needs no cutting.
    """
    if not stop:
        return text
    cut = min((found for found in (text.find(s) for s in stop if s) if found != -1), default=len(text))
    return text[:cut].rstrip()
