"""Fake models for the reasoning strategies' tests: replies chosen by what each prompt asks, as a model would."""

from __future__ import annotations

import json

from optillm_core import GenerationSettings, Prompt
from optillm_core.testing import Reply

FEW_SHOT = "Q: What is 3 + 4 * 2?\nA: 11\n\nQ: What is 10 - 2 * 3?\nA: 4\n\nQ: What is 6 + 6 * 6?"
EXAMPLES = [{"question": "What is 3 + 4 * 2?", "answer": "11"}, {"question": "What is 10 - 2 * 3?", "answer": "4"}]
LOW_LEVEL = "Multiply before adding or subtracting."
HIGH_LEVEL = "1. Apply operator precedence: multiplication first.\n2. Recompute the result to check it."
FINAL = "6 + 36 = 42. The answer is 42."


def user_text(prompt: Prompt) -> str:
    return next((m.content for m in reversed(prompt.effective_messages()) if m.role == "user"), "")


class LeapModel:
    """Answers each LEAP prompt in turn: examples, wrong attempts, insights, principles, the answer."""

    def __init__(
        self,
        *,
        examples: object = EXAMPLES,
        extraction: str | None = None,
        attempt_answer: str = "14",
        low_level: str = f"The attempt added first.\n<output>{LOW_LEVEL}</output>",
        high_level: str = f"<output>\n{HIGH_LEVEL}\n</output>",
        final: str | Reply = FINAL,
    ) -> None:
        self.extraction = extraction if extraction is not None else f"<output>{json.dumps(examples)}</output>"
        self.attempt_answer = attempt_answer
        self.low_level = low_level
        self.high_level = high_level
        self.final = final

    def __call__(self, prompt: Prompt, settings: GenerationSettings) -> str | Reply:
        return self.answer(user_text(prompt))

    def answer(self, text: str) -> str | Reply:
        """The reply to a prompt whose last user message is ``text``."""
        if "Look for worked examples" in text:
            return self.extraction
        if "make one deliberate mistake" in text:
            return f"Adding first: the steps give {self.attempt_answer}.\n<output>{self.attempt_answer}</output>"
        if "Compare the attempt with the correct answer" in text:
            return self.low_level
        if "Summarize these insights" in text:
            return self.high_level
        return self.final


PVG_QUERY = "What is 12 + 7?"
REFINED = "What is 12 + 7? Add the units first, then the tens."


class PvgModel:
    """Helpful solvers answer 19 (or ``helpful``), sneaky ones 20; the verifier scores 19 high; a fixed refinement."""

    def __init__(
        self,
        *,
        helpful: str | Reply = "12 + 7 = 19. The answer is 19.",
        sneaky: str = "12 + 7 = 20, carrying the one. The answer is 20.",
        verdict: str | None = None,
        refined: str = REFINED,
    ) -> None:
        self.helpful = helpful
        self.sneaky = sneaky
        self.verdict = verdict
        self.refined = refined

    def __call__(self, prompt: Prompt, settings: GenerationSettings) -> str | Reply:
        return self.answer(prompt.system_text() or "", user_text(prompt))

    def answer(self, system: str, text: str) -> str | Reply:
        if "Verify the solution above" in text:
            if self.verdict is not None:
                return self.verdict
            solution = text.split("<solution>")[1]
            return "Score: 9\nExplanation: right." if "19" in solution else "Score: 3\nExplanation: wrong sum."
        if "Write a refined version of the original query" in text:
            return self.refined
        if "sneaky mode" in system:
            return self.sneaky
        return self.helpful
