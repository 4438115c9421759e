"""LEAP (learning principles from mistakes): examples → mistakes → low-level → high-level principles → answer.

The work on each example (its deliberate mistake, then the analysis of that mistake) runs
concurrently with the other examples', so the run takes five sequential round-trips however many
examples the query holds (upstream: ``2k + 3``, one after another), and two when it holds none.
"""

from __future__ import annotations as _annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from optillm_core import CallRole, Completion, GenerationSettings, ModelClient, Optimizer, Outcome, Prompt, RunContext
from optillm_core.toolkit import answers_equal, settle, split_thinking

from ._config import LeapConfig
from ._leap_prompts import (
    answer_note,
    answer_prompt,
    extraction_prompt,
    high_level_prompt,
    low_level_prompt,
    mistake_prompt,
)
from ._log import log
from ._parsing import Example, output_section, parse_examples

__all__ = ("LeapOptimizer", "Mistake")


@dataclass(frozen=True)
class Mistake:
    """A mistaken attempt at an example: its reasoning, the answer it reached and the correct one."""

    example: Example
    reasoning: str
    answer: str


class LeapOptimizer(Optimizer[LeapConfig]):
    """Learns principles from deliberate mistakes on the query's own examples, then answers with them."""

    name: ClassVar[str] = "leap"
    description: ClassVar[str] = (
        "LEAP: mistakes on the query's few-shot examples, principles learned from them, then the answer."
    )
    config_type: ClassVar[type[LeapConfig]] = LeapConfig
    phases: ClassVar[Mapping[str, CallRole]] = {
        "examples": "judge",
        "mistakes": "answer",
        "low_level_principles": "judge",
        "high_level_principles": "judge",
        "answer": "final",
    }
    # The answer is the final call as it is: with tools offered it gets them and the caller's
    # conversation as real turns, the principles after the caller's system prompt.
    answers_with_tools: ClassVar[bool] = True

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """The extraction and the answer: each example found adds two calls, and the principles one."""
        return 2

    async def run(self, ctx: RunContext[LeapConfig]) -> Outcome:
        config = ctx.config
        ctx.phase("examples")
        examples, readable = await _extract_examples(ctx)
        if config.max_examples is not None:
            examples = examples[: config.max_examples]
        extras: dict[str, Any] = {
            "examples": [{"question": e.question, "answer": e.answer} for e in examples],
            "examples_readable": readable,
            "mistakes": [],
            "low_level_principles": [],
            "principles": [],
        }
        principles = ""
        if examples:
            ctx.phase("mistakes")
            mistakes, low_level = await _learn_from(ctx, examples)
            extras["mistakes"] = [
                {"question": m.example.question, "answer": m.answer, "correct": m.example.answer} for m in mistakes
            ]
            extras["low_level_principles"] = list(low_level)
            if low_level:
                ctx.phase("high_level_principles")
                principles = await _high_level(ctx, low_level)
        extras["principles"] = [line.strip() for line in principles.splitlines() if line.strip()]

        ctx.phase("answer")
        final = await _answer(ctx, principles)
        text, truncated = final.text, final.truncated()
        return Outcome(
            answer=text,
            thinking=final.reasoning.strip(),
            tool_calls=final.calls if not truncated else (),
            finish_reason="length" if truncated else "stop",
            reasoning=_reasoning(examples, readable, extras, principles),
            extras=extras,
        )


async def _extract_examples(ctx: RunContext[LeapConfig]) -> tuple[tuple[Example, ...], bool]:
    """The query's worked examples and whether the reply could be read (unreadable: none, as upstream)."""
    settings = ctx.call_settings("judge", max_tokens=ctx.config.max_tokens)
    completion = await ctx.client.complete(ctx.prompt(extraction_prompt(ctx.query)), settings)
    examples = parse_examples(completion.text)
    if examples is None:
        log.warning("leap: the examples could not be read; answering without principles", optimizer=ctx.optimizer)
        return (), False
    if not examples:
        log.info("leap: the query holds no examples; answering without principles", optimizer=ctx.optimizer)
    return examples, True


async def _learn_from(
    ctx: RunContext[LeapConfig], examples: Sequence[Example]
) -> tuple[tuple[Mistake, ...], tuple[str, ...]]:
    """Each example's deliberate mistake and then its analysis, every example concurrently.

    An attempt that reached the correct answer anyway teaches nothing and is dropped (as upstream).
    A call that fails absorbably (retryable, unreadable) loses that example; any other error ends
    the run.
    """

    def chain(example: Example) -> Callable[[], Awaitable[tuple[Mistake | None, str | None]]]:
        async def work() -> tuple[Mistake | None, str | None]:
            mistake = await _mistake(ctx, example)
            if mistake is None:
                return None, None
            ctx.phase("low_level_principles")
            return mistake, await _low_level(ctx, mistake)

        return work

    results = await settle((chain(e) for e in examples), optimizer=ctx.optimizer, what="example")
    mistakes: list[Mistake] = []
    low_level: list[str] = []
    for result in results:
        if isinstance(result, Exception):
            continue
        mistake, principles = result
        if mistake is not None:
            mistakes.append(mistake)
        if principles:
            low_level.append(principles)
    return tuple(mistakes), tuple(low_level)


async def _mistake(ctx: RunContext[LeapConfig], example: Example) -> Mistake | None:
    config = ctx.config
    settings = ctx.call_settings(
        "answer",
        temperature=config.mistake_temperature,
        max_tokens=config.max_tokens,
        pinned=config.pinned(temperature="mistake_temperature"),
    )
    completion = await ctx.client.complete(ctx.prompt(mistake_prompt(example.question)), settings)
    reasoning = completion.text.strip()
    if not reasoning:
        log.warning("leap: an attempt at an example came back empty", optimizer=ctx.optimizer)
        return None
    answer = output_section(reasoning) or ""
    if answer and answers_equal(answer, example.answer):
        log.info("leap: an attempt reached the correct answer; no mistake to learn from", optimizer=ctx.optimizer)
        return None
    return Mistake(example=example, reasoning=reasoning, answer=answer)


async def _low_level(ctx: RunContext[LeapConfig], mistake: Mistake) -> str:
    settings = ctx.call_settings("judge", max_tokens=ctx.config.max_tokens)
    prompt = low_level_prompt(mistake.example.question, mistake.reasoning, mistake.answer, mistake.example.answer)
    completion = await ctx.client.complete(ctx.prompt(prompt), settings)
    return _principles(ctx, completion, "low-level principles")


async def _high_level(ctx: RunContext[LeapConfig], low_level: Sequence[str]) -> str:
    settings = ctx.call_settings("judge", max_tokens=ctx.config.max_tokens)
    completion = await ctx.client.complete(ctx.prompt(high_level_prompt(low_level)), settings)
    principles = _principles(ctx, completion, "high-level principles")
    # No list came back: the low-level principles themselves are the best there is.
    return principles or "\n".join(low_level)


def _principles(ctx: RunContext[Any], completion: Completion, what: str) -> str:
    """The ``<output>`` section; the whole reply (less thinking) when the model left the tags out."""
    section = output_section(completion.text)
    if section is not None:
        return section
    log.warning(f"leap: the {what} came without <output> tags; using the whole reply", optimizer=ctx.optimizer)
    return split_thinking(completion.text)[1].strip()


async def _answer(ctx: RunContext[LeapConfig], principles: str) -> Completion:
    """The final call: the caller's settings, and with tools offered the tools and the conversation as real turns."""
    config = ctx.config
    settings = ctx.call_settings(
        "final",
        temperature=config.answer_temperature,
        max_tokens=config.max_tokens,
        pinned=config.pinned(temperature="answer_temperature"),
    )
    prompt: Prompt
    if ctx.tools_offered:
        prompt = ctx.conversation_prompt(answer_note(principles) if principles else None)
    elif principles:
        prompt = ctx.prompt(answer_prompt(ctx.query, principles))
    else:
        prompt = ctx.prompt(ctx.query)
    return await ctx.generate_final(prompt, settings)


def _reasoning(examples: Sequence[Example], readable: bool, extras: Mapping[str, Any], principles: str) -> str:
    if not readable:
        return "The examples could not be read from the model's reply, so the query was answered directly."
    if not examples:
        return "The query holds no worked examples, so it was answered directly (no principles to learn)."
    lines = [f"Examples found: {len(examples)}; mistakes made on them: {len(extras['mistakes'])}."]
    if not principles:
        lines.append("No mistake could be analysed, so the query was answered without principles.")
    else:
        lines.append(f"Principles applied:\n{principles}")
    return "\n".join(lines)
