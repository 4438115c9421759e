"""Seeded arithmetic questions and a stochastic oracle that plays the model for every strategy prompt.

The oracle's rules (also stated in docs/benchmarks.md):

- A question is ``What is A op B op C?`` with ``op`` in ``+ - *`` and the usual precedence.
  Each question has four *distractors*: the left-to-right value (the classic precedence slip, when
  it differs), the truth + 1, the truth - 1 and the truth + 10 (the truth - 10 fills in when the
  left-to-right value equals the truth).
- A *draw* is right with probability ``p``; otherwise it is one of the four distractors, uniformly.
- The reply to a prompt depends on its kind, read from keywords of its instruction, the last paragraph
  of its last user message (see :func:`classify`):
  ``solve``: a prompt with no ``\\boxed{}`` answers in it gets a fresh draw.
  ``combine`` (synthesis, aggregation, improvement): a prompt holding ``\\boxed{}`` answers gets
  their plurality answer when one value is strictly the most frequent and appears at least twice;
  otherwise (one candidate, or no agreement) a fresh draw.
  ``verify``: the judge looks at the last ``\\boxed{}`` answer in the prompt and judges it correctly
  with probability ``(1 + p) / 2``; it replies with a VERDICT / SCORE / ISSUES / SUGGESTIONS block.
  ``score``: every ``\\boxed{}`` answer in the conversation is judged so; the score is high only when
  all are judged right.
  ``critique``: one judged line per candidate, no ``\\boxed{}``.
  ``select`` (a request to choose the best candidate): the i-th ``\\boxed{}`` answer in the prompt is
  candidate i; each is judged as in ``verify``; the reply names, among the candidates judged right
  (all of them when none is), the one whose value the most candidates share, the earliest on ties,
  ending with ``Best candidate: i``.
  ``next_turn`` and ``strategy``: fixed sensible text without numbers.
- Randomness is a hash of (seed, question, prompt kind, prompt text, how many draws this exact prompt
  has had), so results do not depend on scheduling, and native ``n`` on or off gives the same draws.
- Tool-call turns (:meth:`Oracle.tool_reply`): offered the ``submit_answer`` tool, a ``solve`` or
  ``combine`` prompt is answered by calling it with the value it would have boxed, its arguments
  written in one of several equivalent JSON forms (spacing, ``19`` or ``19.0``); a judge reads a
  reply that calls the tool, as strategies show it (``[calls the tool `submit_answer` with
  arguments {...}]``), as that value boxed.
"""

from __future__ import annotations as _annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from math import comb, factorial
from typing import Literal

__all__ = (
    "SUBMIT_ANSWER",
    "Oracle",
    "PromptKind",
    "Question",
    "classify",
    "copy_or_redraw",
    "generate_questions",
    "instruction_of",
    "majority_bound",
    "plurality_bound",
)

PromptKind = Literal["solve", "combine", "verify", "score", "critique", "select", "next_turn", "strategy", "unknown"]

_QUESTION = re.compile(r"What is (\d+) ([+\-*]) (\d+) ([+\-*]) (\d+)\?")
_BOXED_NUMBER = re.compile(r"\\boxed\{\s*(-?\d+)\s*\}")
_OPS = ("+", "-", "*")
DISTRACTORS = 4

SUBMIT_ANSWER = "submit_answer"
"""The tool of the tool-call turns: ``submit_answer(value: integer)``."""
_RENDERED_CALL = re.compile(r"\[calls the tool `submit_answer` with arguments (\{[^\]]*\})\]")
# Equivalent ways a model writes the same arguments; a vote must see through them.
_ARGUMENT_FORMS = ('{{"value": {v}}}', '{{"value":{v}}}', '{{ "value": {v}.0 }}', '{{\n  "value": {v}\n}}')


def _apply(op: str, x: int, y: int) -> int:
    return x + y if op == "+" else x - y if op == "-" else x * y


@dataclass(frozen=True)
class Question:
    a: int
    op1: str
    b: int
    op2: str
    c: int

    @property
    def text(self) -> str:
        return f"What is {self.a} {self.op1} {self.b} {self.op2} {self.c}?"

    @property
    def answer(self) -> int:
        if self.op2 == "*" and self.op1 != "*":
            return _apply(self.op1, self.a, self.b * self.c)
        return _apply(self.op2, _apply(self.op1, self.a, self.b), self.c)

    def distractors(self) -> tuple[int, ...]:
        truth = self.answer
        left_to_right = _apply(self.op2, _apply(self.op1, self.a, self.b), self.c)
        first = left_to_right if left_to_right != truth else truth - 10
        return (first, truth + 1, truth - 1, truth + 10)

    @classmethod
    def parse(cls, text: str) -> Question | None:
        """The first question found in ``text``."""
        match = _QUESTION.search(text)
        if match is None:
            return None
        a, op1, b, op2, c = match.groups()
        return cls(int(a), op1, int(b), op2, int(c))


def generate_questions(count: int, seed: int = 0) -> list[Question]:
    """``count`` distinct seeded questions with operands 2..99."""
    rng = random.Random(seed)
    seen: set[str] = set()
    questions: list[Question] = []
    while len(questions) < count:
        q = Question(rng.randint(2, 99), rng.choice(_OPS), rng.randint(2, 99), rng.choice(_OPS), rng.randint(2, 99))
        if q.text not in seen:
            seen.add(q.text)
            questions.append(q)
    return questions


_NEXT_TURN = re.compile(r"\buser\b[^.]{0,60}\bnext\b|\bnext\b[^.]{0,30}\buser\b|follow-up question", re.I)
_VERIFY = re.compile(r"\bverdict\b|\bverif(y|ication)\b|\bCORRECT, INCORRECT\b", re.I)
_SCORE = re.compile(r"\b(rate|score|rating)\b[^.]*\b0\b[^.]*\b(1|10)\b", re.I)
_STRATEGY = re.compile(
    r"\b(extract|describe|summari[sz]e|identify|name)\b[^.]{0,40}\b(strateg(y|ies)|approach)\b", re.I
)
_SELECT = re.compile(r"\b(choose|pick|select)\b[^.]{0,60}\bbest\b[^.]{0,20}\b(candidate|response)\b", re.I)
_CRITIQUE = re.compile(r"\bcritique\b|\bstrengths\b|\bweaknesses\b|\bcritici[sz]e\b", re.I)
_ANSWER_REQUEST = re.compile(
    r"\b(write|give|produce|provide)\b[^.]{0,40}\b(best|final|improved|single|refined|corrected)\b[^.]{0,20}"
    r"\b(response|answer|solution)\b",
    re.I,
)


def instruction_of(messages: Sequence[tuple[str, str]]) -> str:
    """The instruction a prompt ends with: the last paragraph of its last user message.

    Strategies put the material (candidates, solutions, reviews) first and what they ask for last.
    """
    last_user = next((content for role, content in reversed(messages) if role == "user"), "")
    paragraphs = [p for p in last_user.strip().split("\n\n") if p.strip()]
    return paragraphs[-1] if paragraphs else ""


def classify(instruction: str, full_text: str) -> PromptKind:
    """What a prompt asks for, from keywords of its ``instruction`` (see :func:`instruction_of`)."""
    if _NEXT_TURN.search(instruction):
        return "next_turn"
    if _VERIFY.search(instruction):
        return "verify"
    if _SCORE.search(instruction):
        return "score"
    if _STRATEGY.search(instruction):
        return "strategy"
    if _SELECT.search(instruction):
        return "select"
    if _CRITIQUE.search(instruction) and not _ANSWER_REQUEST.search(instruction):
        return "critique"
    if Question.parse(full_text) is None:
        return "unknown"
    return "combine" if _BOXED_NUMBER.search(full_text) else "solve"


@dataclass
class Oracle:
    """The stochastic model: right with probability ``p``; see the module docstring for every rule."""

    p: float
    seed: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    _draws: Counter[str] = field(default_factory=Counter)

    @property
    def judge_accuracy(self) -> float:
        return (1 + self.p) / 2

    def reset(self) -> None:
        self._draws.clear()
        self.kinds.clear()

    def reply(self, messages: Sequence[tuple[str, str]]) -> str:
        """The reply to a chat given as (role, content) pairs (shown ``submit_answer`` calls read as their value)."""
        messages = [(role, _boxed_calls(content)) for role, content in messages]
        full_text = "\n".join(content for _, content in messages)
        kind = classify(instruction_of(messages), full_text)
        self.kinds[kind] += 1
        question = Question.parse(full_text)
        rng = self._rng(question, kind, full_text)
        if question is None or kind == "unknown":
            return "I need a concrete arithmetic question to answer."
        return _REPLIES[kind](self, question, rng, full_text)

    def tool_reply(self, messages: Sequence[tuple[str, str]]) -> tuple[str, str | None]:
        """The reply of a turn that offers ``submit_answer``: ``("", arguments)`` for a call, else ``(text, None)``."""
        shown = [(role, _boxed_calls(content)) for role, content in messages]
        full_text = "\n".join(content for _, content in shown)
        kind = classify(instruction_of(shown), full_text)
        question = Question.parse(full_text)
        if question is None or kind not in ("solve", "combine"):
            return self.reply(messages), None
        self.kinds[f"{kind} (tool call)"] += 1
        rng = self._rng(question, kind, full_text)
        value = _boxed_value(_REPLIES[kind](self, question, rng, full_text))
        return "", rng.choice(_ARGUMENT_FORMS).format(v=value)

    def _rng(self, question: Question | None, kind: str, text: str) -> random.Random:
        digest = hashlib.sha256(text.encode()).hexdigest()
        occurrence = self._draws[digest]
        self._draws[digest] += 1
        key = f"{self.seed}|{question.text if question else ''}|{kind}|{digest}|{occurrence}"
        return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))

    def draw(self, question: Question, rng: random.Random) -> int:
        if rng.random() < self.p:
            return question.answer
        return rng.choice(question.distractors())

    def judge(self, question: Question, candidate: int | None, rng: random.Random) -> bool:
        """Whether the judge calls ``candidate`` right (it is correct with probability ``judge_accuracy``)."""
        truly_right = candidate == question.answer
        return truly_right if rng.random() < self.judge_accuracy else not truly_right

    # -- replies -----------------------------------------------------------------------------------

    def _solve(self, question: Question, rng: random.Random, text: str) -> str:
        return _solution(question, self.draw(question, rng))

    def _combine(self, question: Question, rng: random.Random, text: str) -> str:
        counts = Counter(int(v) for v in _BOXED_NUMBER.findall(text)).most_common()
        if counts and counts[0][1] >= 2 and (len(counts) == 1 or counts[0][1] > counts[1][1]):
            return _solution(question, counts[0][0])
        return _solution(question, self.draw(question, rng))

    def _verify(self, question: Question, rng: random.Random, text: str) -> str:
        candidate = _last_boxed(text)
        if self.judge(question, candidate, rng):
            return (
                "VERDICT: CORRECT\nSCORE: 0.9\nISSUES:\n- none\nSUGGESTIONS:\n- none\n"
                f"Recomputing with operator precedence confirms {candidate}."
            )
        return (
            "VERDICT: INCORRECT\nSCORE: 0.1\nISSUES:\n"
            f"- recomputing with operator precedence does not give {candidate}\n"
            "SUGGESTIONS:\n- redo the calculation, multiplying before adding or subtracting"
        )

    def _score(self, question: Question, rng: random.Random, text: str) -> str:
        # The whole conversation is rated: good only when every answer in it is judged right.
        values: list[int | None] = [int(v) for v in _BOXED_NUMBER.findall(text)] or [None]
        good = all([self.judge(question, value, rng) for value in values])
        if re.search(r"\b10\b", text[-400:]):
            return "9" if good else "2"
        return "0.9" if good else "0.1"

    def _critique(self, question: Question, rng: random.Random, text: str) -> str:
        lines = []
        for index, value in enumerate(_BOXED_NUMBER.findall(text), start=1):
            verdict = "looks right" if self.judge(question, int(value), rng) else "looks wrong"
            lines.append(f"Candidate {index}: it concludes {value}, which {verdict}.")
        return "\n".join(lines) or "No candidate answers to critique."

    def _select(self, question: Question, rng: random.Random, text: str) -> str:
        values = [int(v) for v in _BOXED_NUMBER.findall(text)]
        if not values:
            return "There are no candidate answers to choose from."
        judged_right = [i for i, value in enumerate(values) if self.judge(question, value, rng)]
        shared = Counter(values)
        pool = judged_right or list(range(len(values)))
        best = max(pool, key=lambda i: (shared[values[i]], -i)) + 1
        return (
            f"Checking each candidate against the usual operator precedence, candidate {best} holds up best."
            f"\n\nBest candidate: {best}"
        )

    def _next_turn(self, question: Question, rng: random.Random, text: str) -> str:
        return "Can you check that result once more, step by step?"

    def _strategy(self, question: Question, rng: random.Random, text: str) -> str:
        return (
            "- Key insight: multiplication binds tighter than addition and subtraction.\n"
            "- Method: evaluate the product first, then combine the rest from left to right.\n"
            "- Check: recompute the result in a different order."
        )


_REPLIES = {
    "solve": Oracle._solve,
    "combine": Oracle._combine,
    "verify": Oracle._verify,
    "score": Oracle._score,
    "critique": Oracle._critique,
    "select": Oracle._select,
    "next_turn": Oracle._next_turn,
    "strategy": Oracle._strategy,
}


def _solution(question: Question, value: int) -> str:
    return (
        f"Evaluating {question.a} {question.op1} {question.b} {question.op2} {question.c} "
        f"with the usual operator precedence gives {value}.\n\nThe answer is \\boxed{{{value}}}."
    )


def _boxed_value(reply: str) -> int:
    value = _last_boxed(reply)
    assert value is not None, reply
    return value


def _boxed_calls(text: str) -> str:
    """``text`` with each shown ``submit_answer`` call replaced by its value, boxed, as a judge reads it."""

    def boxed(match: re.Match[str]) -> str:
        try:
            value = json.loads(match.group(1)).get("value")
        except (ValueError, AttributeError):
            return match.group(0)
        return f"\\boxed{{{int(value)}}}" if isinstance(value, int | float) else match.group(0)

    return _RENDERED_CALL.sub(boxed, text)


def _last_boxed(text: str) -> int | None:
    values = _BOXED_NUMBER.findall(text)
    return int(values[-1]) if values else None


# -- exact bounds for voting ------------------------------------------------------------------------


def majority_bound(k: int, p: float) -> float:
    """P(more than half of ``k`` independent draws are right): the strict-majority vote's accuracy."""
    return sum(comb(k, i) * p**i * (1 - p) ** (k - i) for i in range(k // 2 + 1, k + 1))


def _outcomes(k: int, p: float, distractors: int) -> list[tuple[tuple[int, ...], float]]:
    """Every count vector (truth first, then each distractor) of ``k`` draws, with its probability."""
    q = (1 - p) / distractors
    outcomes = []
    for counts in product(range(k + 1), repeat=distractors + 1):
        if sum(counts) != k:
            continue
        ways = factorial(k)
        for c in counts:
            ways //= factorial(c)
        outcomes.append((counts, ways * p ** counts[0] * q ** (k - counts[0])))
    return outcomes


def copy_or_redraw(k: int, p: float, distractors: int = DISTRACTORS) -> float:
    """Exact accuracy of the oracle's ``combine`` rule over ``k`` draws (MoA's synthesis over its candidates).

    A strictly most frequent value seen at least twice is copied; otherwise the reply is a fresh draw.
    """
    total = 0.0
    for counts, probability in _outcomes(k, p, distractors):
        top = max(counts)
        if top >= 2 and counts.count(top) == 1:
            total += probability * (counts[0] == top)
        else:
            total += probability * p
    return total


def plurality_bound(k: int, p: float, distractors: int = DISTRACTORS) -> float:
    """Exact accuracy of a plurality vote over ``k`` oracle draws, ties broken uniformly at random.

    Wrong draws spread uniformly over ``distractors`` values, as the oracle's do.
    """
    total = 0.0
    for counts, probability in _outcomes(k, p, distractors):
        top = max(counts)
        if counts[0] == top:
            total += probability / counts.count(top)
    return total
