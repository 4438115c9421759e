"""A test model that answers sample, rating and comparison prompts by what they ask, whatever their order."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from optillm_core import GenerationSettings, Prompt
from optillm_core.testing import Reply

QUERY = "What is 12 + 7?"
SYSTEM = "Answer briefly."


def kind_of(text: str) -> str:
    """``rating``, ``comparison`` or ``sample``, from the prompt's last user message."""
    if "<response>" in text and "Rate the response" in text:
        return "rating"
    if '<candidate number="' in text and "Best candidate: N" in text:
        return "comparison"
    return "sample"


def candidates_in(text: str) -> list[str]:
    """The candidates a comparison prompt shows, in their numbered order."""
    return re.findall(r'<candidate number="\d+">\n(.*?)\n</candidate>', text, re.DOTALL)


def response_in(text: str) -> str:
    """The candidate answer a rating prompt shows."""
    return text.split("<response>\n", 1)[1].split("\n</response>", 1)[0]


@dataclass
class Model:
    """Samples come from ``samples`` in order; a rating is ``rate(answer)``; a comparison is ``compare``.

    ``compare`` may be a function of the comparison prompt. Use it as a
    :class:`~optillm_core.testing.FunctionClient` function; it records each kind it saw.
    """

    samples: Iterable[str | Reply | BaseException]
    rate: Callable[[str], str | Reply | BaseException] = lambda answer: "Rating: 5/10"
    compare: str | Reply | BaseException | Callable[[str], str | Reply | BaseException] = "Best candidate: 1"
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._samples = iter(self.samples)

    def __call__(self, prompt: Prompt, settings: GenerationSettings) -> str | Reply | BaseException:
        text = next(m.content for m in reversed(prompt.effective_messages()) if m.role == "user")
        kind = kind_of(text)
        self.seen.append(kind)
        if kind == "rating":
            return self.rate(response_in(text))
        if kind == "comparison":
            return self.compare(text) if callable(self.compare) else self.compare
        return next(self._samples)
