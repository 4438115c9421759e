"""Finding and comparing final answers in model output, shared by every strategy."""

from __future__ import annotations as _annotations

import re
from fractions import Fraction

from ._errors import AnswerExtractionError

__all__ = (
    "answers_equal",
    "extract_answer",
    "extract_boxed",
    "normalize_answer",
    "require_answer",
    "split_thinking",
)

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_MARKERS = re.compile(
    r"(?:final answer|the answer is|answer)\s*(?:is)?\s*[:：]?\s*",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$", re.IGNORECASE)
_FRACTION = re.compile(r"^([+-]?\d+)\s*/\s*([+-]?\d+)$")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_TEXT_WRAPPER = re.compile(r"\\(?:text|mathrm|textbf|mathbf)\s*\{([^{}]*)\}")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")


def _closing_brace(text: str, open_index: int) -> int | None:
    """Index of the brace closing the one at ``open_index``, or ``None`` when it is never closed."""
    depth = 0
    for index in range(open_index, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def extract_boxed(text: str) -> str | None:
    """The content of the last complete ``\\boxed{...}`` (nested braces allowed), or ``None``."""
    for match in reversed(list(_BOXED.finditer(text))):
        open_index = match.end() - 1
        close = _closing_brace(text, open_index)
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

    Looks outside thinking tags first, then inside: the last ``\\boxed{}``, else the text after the
    last final-answer marker ("Final answer:", "The answer is", "Answer:") up to the end of its line.
    """
    thinking, visible = split_thinking(text)
    for part in (visible, thinking):
        boxed = extract_boxed(part)
        if boxed:
            return boxed
    for part in (visible, thinking):
        markers = list(_MARKERS.finditer(part))
        if markers:
            line = part[markers[-1].end() :].strip().splitlines()
            candidate = line[0].strip().strip("*").strip().rstrip(".").strip() if line else ""
            if candidate:
                return candidate
    return None


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
    simple_fraction = re.fullmatch(r"\(([^()]*)\)/\(([^()]*)\)", text)
    if simple_fraction is not None:
        text = f"{simple_fraction.group(1)}/{simple_fraction.group(2)}"
    number = _canonical_number(text)
    if number is not None:
        return number
    return " ".join(text.lower().split())


def answers_equal(a: str, b: str) -> bool:
    """Whether two answers are the same after :func:`normalize_answer`."""
    return normalize_answer(a) == normalize_answer(b)
