"""The oracle's rules and the exact vote bounds (pure functions, no timings)."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks._oracle import (
    Oracle,
    Question,
    classify,
    copy_or_redraw,
    generate_questions,
    instruction_of,
    majority_bound,
    plurality_bound,
)
from benchmarks.quality import OracleClient
from optillm_core import default_registry
from optillm_core.toolkit import APPROACHES, rating_prompt, varied_query
from optillm_sampling import comparison_prompt, parse_choice


def _boxed(text: str) -> int:
    match = re.search(r"\\boxed\{(-?\d+)\}", text)
    assert match is not None, text
    return int(match.group(1))


def test_questions_are_seeded_distinct_and_parse_back() -> None:
    questions = generate_questions(200, seed=5)
    assert questions == generate_questions(200, seed=5)
    assert questions != generate_questions(200, seed=6)
    assert len({q.text for q in questions}) == 200
    assert all(Question.parse(f"Please solve: {q.text} Thanks.") == q for q in questions)


@pytest.mark.parametrize(
    ("text", "answer", "distractors"),
    [
        ("What is 2 + 3 * 4?", 14, (20, 15, 13, 24)),
        ("What is 10 - 2 - 3?", 5, (-5, 6, 4, 15)),
        ("What is 6 * 7 + 1?", 43, (33, 44, 42, 53)),
    ],
)
def test_question_answers_and_distractors(text: str, answer: int, distractors: tuple[int, ...]) -> None:
    question = Question.parse(text)
    assert question is not None
    assert question.answer == answer
    assert question.distractors() == distractors


@given(st.sampled_from(generate_questions(50, seed=1)))
def test_distractors_are_four_distinct_wrong_values(question: Question) -> None:
    distractors = question.distractors()
    assert len(set(distractors)) == 4
    assert question.answer not in distractors


@pytest.mark.parametrize(
    ("instruction", "kind"),
    [
        ("What is 2 + 3 * 4?", "solve"),
        ("Predict the next user message in this conversation.", "next_turn"),
        ("Rate this conversation from 0 to 1. Reply with a number only.", "score"),
        ("Verify the solution below and give a verdict.", "verify"),
        ("Extract the key strategy used in this solution.", "strategy"),
        ("Critique each candidate: strengths and weaknesses.", "critique"),
        ("Using the strengths and weaknesses above, write the single best response.", "combine"),
        ("Then choose the best candidate and end with `Best candidate: N`.", "select"),
    ],
)
def test_classify(instruction: str, kind: str) -> None:
    text = "What is 2 + 3 * 4?" + ("\n\\boxed{14}" if kind == "combine" else "")
    assert classify(instruction, text) == kind


def test_the_instruction_is_the_last_paragraph_of_the_last_user_message() -> None:
    review = "VERDICT: INCORRECT\nSCORE: 0.1"
    messages = [
        ("system", "Verify everything."),
        ("user", "What is 2 + 3 * 4?"),
        ("assistant", "\\boxed{20}"),
        ("user", f"Problem: What is 2 + 3 * 4?\n\nReview 1:\n{review}\n\nWrite a corrected solution."),
    ]
    assert instruction_of(messages) == "Write a corrected solution."
    assert Oracle(p=1.0).reply(messages).endswith("\\boxed{14}.")  # an improvement, not a verdict


def test_verdicts_and_scores_judge_the_answers_in_the_prompt() -> None:
    oracle = Oracle(p=1.0)  # the judge is always right
    right = "What is 2 + 3 * 4?\n\nSolution: \\boxed{14}\n\nGive your verdict."
    wrong = "What is 2 + 3 * 4?\n\nSolution: \\boxed{20}\n\nGive your verdict."
    assert oracle.reply([("user", right)]).startswith("VERDICT: CORRECT")
    assert oracle.reply([("user", wrong)]).startswith("VERDICT: INCORRECT")
    conversation = [("user", "What is 2 + 3 * 4?"), ("assistant", "\\boxed{14}")]
    assert oracle.reply([*conversation, ("user", "Rate the replies from 0 to 1.")]) == "0.9"
    bad = [("user", "What is 2 + 3 * 4?"), ("assistant", "\\boxed{14}"), ("assistant", "\\boxed{20}")]
    assert oracle.reply([*bad, ("user", "Rate the replies from 0 to 1.")]) == "0.1"


def test_combine_copies_a_majority_and_redraws_otherwise() -> None:
    oracle = Oracle(p=0.0, seed=1)
    agree = "What is 2 + 3 * 4?\n1: \\boxed{20}\n2: \\boxed{20}\n3: \\boxed{13}\nSynthesize the best answer."
    assert _boxed(oracle.reply([("user", agree)])) == 20
    split = "What is 2 + 3 * 4?\n1: \\boxed{20}\n2: \\boxed{13}\nSynthesize the best answer."
    assert _boxed(oracle.reply([("user", split)])) != 14  # p = 0: a fresh draw is always wrong


def test_draws_do_not_depend_on_call_order() -> None:
    questions = generate_questions(30, seed=2)
    first, second = Oracle(p=0.5, seed=3), Oracle(p=0.5, seed=3)
    forward = {q.text: [first.reply([("user", q.text)]) for _ in range(3)] for q in questions}
    backward = {q.text: [second.reply([("user", q.text)]) for _ in range(3)] for q in reversed(questions)}
    assert forward == backward


def test_draw_accuracy_is_p() -> None:
    oracle = Oracle(p=0.6, seed=4)
    questions = generate_questions(2000, seed=4)
    right = sum(_boxed(oracle.reply([("user", q.text)])) == q.answer for q in questions)
    assert 0.55 < right / len(questions) < 0.65


def test_judge_accuracy_is_one_plus_p_over_two() -> None:
    oracle = Oracle(p=0.4, seed=5)
    question = generate_questions(1, seed=5)[0]
    rng = random.Random(0)
    calls = [oracle.judge(question, question.answer, rng) for _ in range(4000)]
    assert 0.66 < sum(calls) / len(calls) < 0.74


def test_majority_bound_matches_the_binomial() -> None:
    assert majority_bound(1, 0.6) == pytest.approx(0.6)
    assert majority_bound(3, 0.6) == pytest.approx(0.6**3 + 3 * 0.6**2 * 0.4)
    assert majority_bound(5, 0.5) == pytest.approx(0.5)


@given(st.integers(1, 5), st.floats(0.0, 1.0))
def test_plurality_bound_is_a_probability_at_least_the_majority(k: int, p: float) -> None:
    value = plurality_bound(k, p)
    assert -1e-12 <= value <= 1 + 1e-12
    assert value >= majority_bound(k, p) - 1e-12


def test_plurality_bound_for_one_and_three_draws() -> None:
    p = 0.6
    q = (1 - p) / 4
    assert plurality_bound(1, p) == pytest.approx(p)
    # Right when >= 2 draws are right, or when 1 is right and the two wrong ones differ (a three-way tie).
    one_right_two_distinct_wrong = 3 * p * (1 - p) ** 2 * (1 - 4 * q**2 / (1 - p) ** 2)
    assert plurality_bound(3, p) == pytest.approx(majority_bound(3, p) + one_right_two_distinct_wrong / 3)


def test_copy_or_redraw_for_three_draws() -> None:
    p = 0.6
    q = (1 - p) / 4
    two_or_three_right = majority_bound(3, p)
    # No value repeats: the truth at most once and the wrong draws on distinct distractors.
    all_distinct = (1 - p) ** 3 * (4 * 3 * 2) / 4**3 + 3 * p * (1 - p) ** 2 * (1 - 4 * q**2 / (1 - p) ** 2)
    assert copy_or_redraw(3, p) == pytest.approx(two_or_three_right + all_distinct * p)


def test_copy_or_redraw_matches_a_simulation_of_the_rule() -> None:
    oracle = Oracle(p=0.6, seed=9)
    questions = generate_questions(3000, seed=9)
    right = 0
    for q in questions:
        candidates = [oracle.reply([("user", q.text)]) for _ in range(3)]
        final = oracle.reply([("user", q.text + "\n\n" + "\n\n".join(candidates) + "\n\nWrite the best answer.")])
        right += _boxed(final) == q.answer
    assert right / len(questions) == pytest.approx(copy_or_redraw(3, 0.6), abs=0.03)


def test_the_sampling_strategies_prompts_are_read_as_what_they_are() -> None:
    question = "What is 2 + 3 * 4?"
    candidates = ["It is \\boxed{14}.", "It is \\boxed{20}.", "So \\boxed{14}."]
    rating = rating_prompt(question, candidates[0])
    comparison = comparison_prompt(question, candidates)
    assert classify(instruction_of([("user", rating)]), rating) == "score"
    assert classify(instruction_of([("user", comparison)]), comparison) == "select"
    for index in range(len(APPROACHES) + 1):
        varied = varied_query(question, index)
        assert classify(instruction_of([("user", varied)]), varied) == "solve"


def test_select_names_a_candidate_judged_right_and_shared_most() -> None:
    oracle = Oracle(p=1.0)  # the judge is always right
    candidates = ["\\boxed{20}", "\\boxed{14}", "\\boxed{13}", "\\boxed{14}"]
    reply = oracle.reply([("user", comparison_prompt("What is 2 + 3 * 4?", candidates))])
    assert reply.endswith("Best candidate: 2")
    assert parse_choice(reply, 4) == 2
    wrong_only = ["\\boxed{20}", "\\boxed{13}", "\\boxed{13}"]
    reply = oracle.reply([("user", comparison_prompt("What is 2 + 3 * 4?", wrong_only))])
    assert reply.endswith("Best candidate: 2")  # none judged right: the most shared value, earliest


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("bon", {"solve", "score"}),
        ("self_consistency", {"solve"}),
        ("majority_voting", {"solve"}),
        ("genselect", {"solve", "select"}),
    ],
)
async def test_each_sampling_strategys_calls_reach_the_oracle_as_their_kinds(name: str, kinds: set[str]) -> None:
    oracle = Oracle(p=0.6, seed=1)
    for question in generate_questions(5, seed=1):
        solution = await default_registry().create(name).optimize(question.text, OracleClient(oracle))
        assert _boxed(solution.answer) in (question.answer, *question.distractors())
    assert set(oracle.kinds) == kinds


def test_offered_the_tool_the_oracle_calls_it_with_the_value_it_would_box_in_equivalent_forms() -> None:
    from benchmarks._oracle import SUBMIT_ANSWER, _boxed_calls
    from optillm_core import ToolCall
    from optillm_core.toolkit import canonical_arguments, render_reply

    question = generate_questions(1, seed=3)[0]
    oracle = Oracle(p=1.0, seed=3)
    forms = set()
    for attempt in range(12):
        text, arguments = oracle.tool_reply([("user", f"{question.text} (try {attempt})")])
        assert text == "" and arguments is not None
        forms.add(arguments)
        assert canonical_arguments(arguments) == f'{{"value":{question.answer}}}'
    assert len(forms) > 1  # written differently, meaning the same
    shown = render_reply("", [ToolCall(id="c", name=SUBMIT_ANSWER, arguments=arguments)])
    assert _boxed_calls(shown) == f"\\boxed{{{question.answer}}}"
    judged, none = oracle.tool_reply([("user", f"{question.text}\n\n{shown}\n\n{rating_prompt('q', 'a')}")])
    assert none is None and judged  # a judge prompt gets a text reply, never a call
