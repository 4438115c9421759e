"""A fake model for MARS tests: it recognises which phase sent a request and answers per phase."""

from __future__ import annotations

import inspect
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

import anyio

from optillm_core import GenerationSettings, ModelProfile, Prompt
from optillm_core.testing import FunctionClient, RecordedRequest, Reply
from optillm_mars import _prompts

Answer = str | Reply | BaseException
Handler = Callable[[Prompt, GenerationSettings], Answer | Awaitable[Answer]]

CORRECT = "VERDICT: CORRECT\nRATING: 9/10\nISSUES:\n- none\nSUGGESTIONS:\n- none"
INCORRECT = "VERDICT: INCORRECT\nRATING: 2/10\nISSUES:\n- the sum is wrong\nSUGGESTIONS:\n- add again"
SOLUTION = "<think>12 + 7 = 19, and 19 - 7 = 12 checks.</think>\nAdding gives 19. The answer is \\boxed{19}."
STRATEGY = "- Add the two numbers\n- Check the result by subtraction"

PHASES = ("exploration", "aggregation", "strategy", "enhancement", "verification", "improvement", "synthesis")


def phase_of(prompt: Prompt) -> str:
    """Which MARS phase sent ``prompt``, from its system prompt and user message."""
    system = prompt.system_text() or ""
    user = next((m.content for m in reversed(prompt.effective_messages()) if m.role == "user"), "")
    if _prompts.VERIFIER_SYSTEM in system:
        return "verification"
    if _prompts.STRATEGIST_SYSTEM in system:
        return "strategy"
    if _prompts.AGGREGATOR_SYSTEM in system:
        return "aggregation"
    if _prompts.SYNTHESIZER_SYSTEM in system:
        return "synthesis"
    if "did not pass review" in user:
        return "improvement"
    if "Other agents approached" in user:
        return "enhancement"
    if "solve this problem on your own" in user:
        return "exploration"
    raise AssertionError(f"unrecognised MARS request: {user[:80]!r}")


class FakeMars(FunctionClient):
    """Answers each phase with its handler: a fixed text or a function of ``(prompt, settings)``.

    With a ``profile`` it refuses what that model refuses, as the core test doubles do.
    """

    __test__ = False

    def __init__(
        self, *, latency: float = 0.0, profile: ModelProfile | None = None, **handlers: Answer | Handler
    ) -> None:
        defaults: dict[str, Answer | Handler] = {
            "exploration": SOLUTION,
            "aggregation": SOLUTION,
            "strategy": STRATEGY,
            "enhancement": SOLUTION,
            "verification": CORRECT,
            "improvement": SOLUTION,
            "synthesis": SOLUTION,
        }
        unknown = set(handlers) - set(defaults)
        if unknown:
            raise ValueError(f"unknown phases {unknown}")
        self.handlers: Mapping[str, Answer | Handler] = {**defaults, **handlers}
        # Not ``self.latency``: FunctionClient's own attribute of that name would replace it with 0.
        self.answer_latency = latency
        super().__init__(self._answer, profile=profile)

    async def _answer(self, prompt: Prompt, settings: GenerationSettings) -> Answer:
        if self.answer_latency:
            # Inside the recorded span, so each request's interval covers its whole simulated round-trip.
            await anyio.sleep(self.answer_latency)
        handler = self.handlers[phase_of(prompt)]
        if isinstance(handler, str | Reply | BaseException):
            return handler
        answer = handler(prompt, settings)
        return await answer if inspect.isawaitable(answer) else answer

    def calls(self) -> Counter[str]:
        return Counter(phase_of(r.prompt) for r in self.requests)

    def of(self, phase: str) -> list[RecordedRequest]:
        return [r for r in self.requests if phase_of(r.prompt) == phase]


def user_text(prompt: Prompt) -> str:
    return next((m.content for m in reversed(prompt.effective_messages()) if m.role == "user"), "")


def agent_of(prompt: Prompt) -> int:
    """The 1-based agent number an exploration prompt addresses."""
    match = re.search(r"You are agent (\d+) of", user_text(prompt))
    assert match is not None
    return int(match.group(1))


def without_agent_numbers(text: str) -> str:
    """A prompt with the agents' numbers taken out, so prompts that differ only by them compare equal."""
    return re.sub(r"\b[Aa]gent \d+", "agent", text)


def boxed(answer: str) -> str:
    return f"Working it out step by step. The answer is \\boxed{{{answer}}}."


def verdict_by_answer(right: str) -> Handler:
    """A verifier that passes solutions boxing ``right`` and fails every other."""

    def judge(prompt: Prompt, settings: GenerationSettings) -> str:
        under_review = user_text(prompt).split("Solution under review:", 1)[1]
        return CORRECT if f"\\boxed{{{right}}}" in under_review else INCORRECT

    return judge
