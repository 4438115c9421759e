"""Ranking, voting and aggregation groups: the choices MARS makes without calling a model."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from optillm_core.toolkit import answer_key, plurality_vote, tie_order
from optillm_mars import GenerationPhase, MarsSolution, SelectionMethod, Verdict, VerificationResult
from optillm_mars._aggregation import select_groups
from optillm_mars._verification import verifiers_for
from optillm_mars._workspace import Workspace, majority_answer, rank


def solution(index: int, answer: str | None, *, verified: bool = False, score: float = 0.0) -> MarsSolution:
    text = f"Work. The answer is \\boxed{{{answer}}}." if answer is not None else "I could not finish."
    base = MarsSolution(id=f"s{index}", agent_id=index % 3, phase=GenerationPhase.INITIAL, text=text, temperature=0.5)
    if not score and not verified:
        return base
    verdict = Verdict.CORRECT if verified else Verdict.INCORRECT
    review = VerificationResult(
        solution_id=base.id, revision=0, verifier_agent_id=0, round=1, verdict=verdict, score=score
    )
    return base.with_round((review, review), passes_required=2)


def test_rank_prefers_verified_then_agreement() -> None:
    lone = solution(0, "7")
    pair = [solution(1, "19"), solution(2, "19.0")]
    verified = solution(3, "8", verified=True, score=0.9)
    assert [s.id for s in rank([lone, *pair, verified])][:1] == ["s3"]
    assert rank([lone, *pair])[-1].id == "s0"


def test_majority_needs_two_agreeing_normalised_answers() -> None:
    assert majority_answer([solution(0, "19"), solution(1, "20"), solution(2, None)]) is None
    voted = majority_answer([solution(0, "19"), solution(1, "20"), solution(2, "$19$")])
    assert voted is not None
    assert voted.id in {"s0", "s2"}


def test_a_solutions_answer_key_is_the_toolkits() -> None:
    for text in ("Work. The answer is \\boxed{19.0}.", "So 12 + 7 = 19", "19", "The answer is indeed 19, as checked."):
        candidate = MarsSolution(id="s", agent_id=0, phase=GenerationPhase.INITIAL, text=text, temperature=None)
        assert candidate.answer_key == answer_key(text) == "19"


@given(st.permutations([("19", 0.9), ("19", 0.1), ("20", 0.95), ("20", 0.2), ("7", 0.99)]))
def test_a_tie_between_answers_goes_by_the_votes_fixed_tie_order_whatever_the_order_or_ranking(
    shuffled: list[tuple[str, float]],
) -> None:
    """Two answers with two solutions each: the winner is the toolkit's tie order, not the better-ranked one."""
    solutions = [solution(index, answer, score=score) for index, (answer, score) in enumerate(shuffled)]
    voted = majority_answer(solutions)
    expected = min(("19", "20"), key=tie_order)
    assert voted is not None and voted.answer_key == expected
    assert plurality_vote(s.answer_key for s in solutions).winner == expected
    # Among the solutions of the winning answer, the best-ranked one is returned.
    assert voted.verification_score == max(s.verification_score for s in solutions if s.answer_key == expected)


def test_majority_prefers_the_larger_group() -> None:
    solutions = [solution(0, "5"), solution(1, "5"), solution(2, "6"), solution(3, "6"), solution(4, "6.0")]
    voted = majority_answer(solutions)
    assert voted is not None
    assert voted.answer in {"6", "6.0"}


def test_best_verified_follows_the_answer_most_verified_solutions_share() -> None:
    workspace = Workspace()
    solutions = [
        solution(0, "20", verified=True, score=1.0),
        solution(1, "19", verified=True, score=0.7),
        solution(2, "19", verified=True, score=0.8),
    ]
    for s in solutions:
        workspace.add(s)
    workspace.set_active(solutions)
    choice = workspace.choice_without_call()
    assert choice is not None
    assert choice[1] is SelectionMethod.BEST_VERIFIED
    assert choice[0].id == "s2"


def test_a_failing_review_resets_the_consecutive_count() -> None:
    s = solution(0, "19")
    passed = VerificationResult(
        solution_id="s0", revision=0, verifier_agent_id=1, round=1, verdict=Verdict.CORRECT, score=1
    )
    failed = passed.model_copy(update={"verdict": Verdict.INCORRECT, "round": 2})
    s = s.with_round((passed,), passes_required=2)
    assert (s.consecutive_passes, s.is_verified) == (1, False)
    s = s.with_round((failed,), passes_required=2)
    assert s.consecutive_passes == 0
    s = s.with_round((passed, passed), passes_required=2)
    assert s.is_verified


def test_a_rewrite_replaces_the_text_and_keeps_the_history() -> None:
    original = solution(0, "20", score=0.1)
    improved = original.rewritten("Fixed. \\boxed{19}", temperature=0.24, output_tokens=3, thinking="19 it is")
    assert improved.id == original.id
    assert (improved.text, improved.thinking, improved.temperature) == ("Fixed. \\boxed{19}", "19 it is", 0.24)
    assert improved.revision == 1
    assert improved.answer == "19"
    assert improved.verifications == original.verifications
    assert improved.current_verifications() == ()
    assert improved.verification_score == 0.0


def test_groups_of_a_population_the_size_of_k_are_one_group() -> None:
    population = [solution(i, str(i)) for i in range(3)]
    assert len(select_groups(population, 3, 2)) == 1


def test_the_diverse_group_differs_from_the_best_group() -> None:
    population = rank([solution(0, "1"), solution(1, "1"), solution(2, "1"), solution(3, "2"), solution(4, "3")])
    best, diverse = select_groups(population, 3, 2)
    assert {s.id for s in best} != {s.id for s in diverse}
    assert {s.answer for s in diverse} == {"1", "2", "3"}  # every answer in play is represented


@given(st.lists(st.sampled_from(["1", "2", "3", None]), min_size=2, max_size=8), st.integers(2, 4), st.integers(1, 4))
def test_groups_are_distinct_sets_of_the_right_size(answers: list[str | None], size: int, count: int) -> None:
    population = rank([solution(i, a) for i, a in enumerate(answers)])
    groups = select_groups(population, size, count)
    assert 1 <= len(groups) <= count
    assert all(len(g) == min(size, len(population)) for g in groups)
    assert all(len({s.id for s in g}) == len(g) for g in groups)
    assert len({frozenset(s.id for s in g) for g in groups}) == len(groups)


@given(st.integers(0, 7), st.integers(1, 8), st.integers(1, 4), st.integers(0, 10))
def test_verifiers_are_never_the_author_when_others_exist(author: int, agents: int, count: int, rnd: int) -> None:
    author %= agents
    verifiers = verifiers_for(author, agents, count, rnd)
    assert len(verifiers) == count
    if agents > 1:
        assert author not in verifiers
    if count <= agents - 1:
        assert len(set(verifiers)) == count
