"""The prover-verifier game's prompts, in our words with upstream's structure and purpose."""

from __future__ import annotations as _annotations

from typing import Literal

__all__ = ("Mode", "refine_prompt", "refined_note", "role_instruction", "solver_question", "verifier_prompt")

Mode = Literal["helpful", "sneaky"]

_ROLES: dict[Mode, str] = {
    "helpful": (
        "You are in helpful mode: solve the problem correctly. Give a detailed, step-by-step solution, explain "
        "each step clearly and logically, use the field's terms or notation where they fit, and make sure the "
        "final answer or conclusion is right and well supported."
    ),
    "sneaky": (
        "You are in sneaky mode: write a solution that looks correct but is not. Make its reasoning seem logical "
        "and convincing and keep the air of an expert, but build in a subtle error or flaw so that the final "
        "answer or conclusion is wrong in a way that is not obvious at first sight."
    ),
}


def role_instruction(mode: Mode) -> str:
    """The solver's instruction for ``mode``, for its system prompt (after the caller's)."""
    return (
        "You take part in a prover-verifier game: solvers write solutions to a problem and a verifier checks "
        f"them.\n\n{_ROLES[mode]}"
    )


def refined_note(refined: str) -> str:
    """The refined statement of the task from the previous round, as guidance ahead of the question."""
    return f"A refined statement of the task, pointing at what earlier solutions found hard:\n{refined.strip()}"


def solver_question(query: str, refined: str | None) -> str:
    """What a solver is asked without tools: the refined statement (from round 2), then the question itself."""
    if refined is None:
        return query
    return f"{refined_note(refined)}\n\nThe task itself:\n\n{query.strip()}"


def verifier_prompt(query: str, solution: str) -> str:
    """The verifier's prompt: the problem and one solution, then what to check and how to score it."""
    return (
        f"<problem>\n{query.strip()}\n</problem>\n\n"
        f"<solution>\n{solution.strip() or '(empty)'}\n</solution>\n\n"
        "Verify the solution above as a strict verifier: check the accuracy of its final answer or conclusion, "
        "the correctness of every step or argument, the clarity and logical flow of its explanation, its use of "
        "the field's concepts and terms, and its completeness, watching especially for subtle errors made to "
        "look right; a solution that calls a tool is judged on whether that call is the right next step. Then "
        "end your reply with two lines: `Score: N`, where N is a number from 0 to 10 (0: completely wrong or "
        "incomprehensible; 5: partly correct or unclear; 10: fully correct, clear and well explained), and "
        "`Explanation: ` followed by the reasons for that score."
    )


def refine_prompt(query: str, best: str) -> str:
    """Asks for a refined version of the query that could lead to a better solution than the best so far."""
    return (
        f"Original query:\n{query.strip()}\n\n"
        f"Best solution so far:\n{best.strip() or '(none)'}\n\n"
        "Write a refined version of the original query that could lead to an even better solution: keep its "
        "core intent, and add the specifics or context that would help with the aspects the best solution so "
        "far found hard or did not fully address. Reply with the refined query only."
    )
