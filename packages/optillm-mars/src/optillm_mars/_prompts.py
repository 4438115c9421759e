"""Every text MARS sends to a model, one builder per phase."""

from __future__ import annotations as _annotations

from collections.abc import Sequence

from ._types import MarsSolution, Strategy

__all__ = (
    "AGENT_APPROACHES",
    "AGGREGATOR_SYSTEM",
    "SOLVER_SYSTEM",
    "STRATEGIST_SYSTEM",
    "SYNTHESIZER_SYSTEM",
    "VERIFIER_SYSTEM",
    "agent_approach",
    "aggregation_prompt",
    "enhancement_prompt",
    "exploration_prompt",
    "improvement_prompt",
    "solver_system",
    "strategy_prompt",
    "synthesis_note",
    "synthesis_prompt",
    "verification_prompt",
)

SOLVER_SYSTEM = (
    "You are one member of a team of problem solvers whose work is checked by the other members. "
    "Be rigorous: restate what is given and what is asked, justify every step, test edge cases, and "
    "check your result by an independent route before you commit to it. Never guess; if a step is "
    "uncertain, work it out. If the task has a single final result (a number, an expression, a choice, "
    "a short phrase), end with it written as \\boxed{result}."
)

THINKING_FORMAT = (
    "Reason privately between <think> and </think>. After </think>, write a clean, self-contained "
    "solution that a reviewer can follow, ending with the final answer."
)

AGGREGATOR_SYSTEM = (
    "You merge several attempts at the same problem into one better solution. Attempts may share "
    "mistakes, so a majority is not proof: check the disputed steps yourself."
)

STRATEGIST_SYSTEM = (
    "You study a worked solution and name the problem-solving strategy behind it, so that other "
    "solvers can reuse it. Describe methods and insights, not the arithmetic."
)

VERIFIER_SYSTEM = (
    "You are a strict reviewer of another team member's solution. Judge correctness, completeness "
    "and rigour. Do not trust the solution's own claims: recompute every result that matters. A "
    "solution with a wrong final answer is INCORRECT however good its method; one that stops "
    "short of answering the question is INCOMPLETE."
)

SYNTHESIZER_SYSTEM = (
    "You write the final answer of a team of solvers from their solutions and the reviews of "
    "those solutions. Prefer work that passed review, settle disagreements by checking, and "
    "produce one complete solution."
)

VERDICT_FORMAT = """Answer in exactly this format:
VERDICT: CORRECT, INCORRECT or INCOMPLETE
RATING: N/10, how sure you are that the final answer is right (0: surely wrong, 10: surely right)
ISSUES:
- one line per error or gap (write "- none" if there is none)
SUGGESTIONS:
- one line per concrete fix (write "- none" if there is none)"""

# Each agent's persona: its way into the problem, part of who the agent is, as its temperature is.
# It is not the toolkit's APPROACHES (which vary a sample's prompt only where sampling cannot set
# samples apart): an agent keeps its persona on every model and at any temperature, in exploration
# and again in strategy enhancement ("your usual approach"), so that the team's members really
# differ, the premise of cross-agent verification; on a model that refuses temperature, or when the
# caller's one temperature replaces the agents' own, it is also what keeps their first solutions apart.
AGENT_APPROACHES = (
    "Work forward from the definitions: state precisely what is given and what is asked, then derive "
    "the result one justified step at a time.",
    "Look for structure before computing: a pattern, symmetry, invariant, simplification or known "
    "result that makes the problem smaller; then confirm it on the specifics of the problem.",
    "Start from concrete cases: try small, extreme or special instances, form a conjecture from "
    "them, then establish the general result and check it against those cases.",
    "Work backwards from what is asked: decide what the final answer must look like and what would "
    "have to be true to reach it, then build the argument that gets there.",
    "Take the sceptic's route: list the ways this problem could trip a solver up (hidden cases, "
    "ambiguous wording, tempting shortcuts) and solve it so that each of them is handled.",
    "Estimate first: bound or approximate the answer quickly, then compute it exactly by a careful "
    "method and make sure the exact result agrees with the estimate.",
)

# Concurrent passes over one solution look from different angles, so they are not copies of one review.
VERIFICATION_FOCUS = (
    "Check the solution step by step, in order. For each step ask whether it follows from what came before.",
    "Before reading the solution's reasoning closely, work out the key results yourself; then compare "
    "them with the solution's final answer and find where any difference comes from.",
    "Look for what the solution skipped: unstated assumptions, missing cases, conditions of the problem "
    "it never used, and whether the final answer really answers the question asked.",
)


def solver_system(use_thinking_tags: bool, caller_system: str | None) -> str:
    """The solver's system prompt, with the thinking format and the caller's own instructions."""
    parts = [SOLVER_SYSTEM]
    if use_thinking_tags:
        parts.append(THINKING_FORMAT)
    if caller_system:
        parts.append(f"Instructions from the user that also apply:\n{caller_system}")
    return "\n\n".join(parts)


def agent_approach(agent_id: int) -> str:
    """The approach agent ``agent_id`` starts from (agents beyond the list reuse it in turn)."""
    return AGENT_APPROACHES[agent_id % len(AGENT_APPROACHES)]


def exploration_prompt(query: str, agent_id: int, num_agents: int) -> str:
    return (
        f"You are agent {agent_id + 1} of {num_agents}; solve this problem on your own.\n\n"
        f"Your approach: {agent_approach(agent_id)}\n\n"
        f"Problem:\n{query}\n\n"
        "Work through it step by step and check your result before you state it."
    )


def _solution_block(label: str, solution: MarsSolution) -> str:
    return f"### {label}\n{solution.visible}"


def aggregation_prompt(query: str, solutions: Sequence[MarsSolution]) -> str:
    blocks = "\n\n".join(_solution_block(f"Attempt {i + 1}", s) for i, s in enumerate(solutions))
    return (
        f"Problem:\n{query}\n\n"
        f"Here are {len(solutions)} attempts at it.\n\n{blocks}\n\n"
        "Compare the attempts: note where they agree, where they differ, and which steps hold up when "
        "you check them. Then write one complete, improved solution that keeps the sound ideas and "
        "corrects the errors. Do not refer to the attempts by number in your solution."
    )


def strategy_prompt(query: str, solution: MarsSolution) -> str:
    return (
        f"Problem:\n{query}\n\nSolution:\n{solution.visible}\n\n"
        "Describe the strategy of this solution in 3 to 5 bullet points, one per line, each starting "
        "with '- ': the key insight, the method, and the checks that make the result reliable. "
        "Reply with the bullet points only."
    )


def enhancement_prompt(query: str, agent_id: int, own: Strategy | None, peers: Sequence[Strategy]) -> str:
    peer_text = "\n\n".join(f"Agent {s.agent_id + 1}'s strategy:\n{s.describe()}" for s in peers)
    own_text = f"Your own earlier strategy:\n{own.describe()}\n\n" if own is not None else ""
    return (
        f"You are agent {agent_id + 1}. Your usual approach: {agent_approach(agent_id)}\n\n"
        f"Problem:\n{query}\n\n{own_text}"
        f"Other agents approached the problem like this:\n\n{peer_text}\n\n"
        "Solve the problem again. Use whatever helps from these strategies: combine ideas, or switch "
        "to a peer's approach if it is more reliable than yours. Write a complete solution and check "
        "its result."
    )


def verification_prompt(query: str, solution: MarsSolution, verifier_agent_id: int, pass_index: int) -> str:
    focus = VERIFICATION_FOCUS[pass_index % len(VERIFICATION_FOCUS)]
    return (
        f"You are agent {verifier_agent_id + 1}, reviewing a solution written by agent {solution.agent_id + 1}.\n\n"
        f"Problem:\n{query}\n\nSolution under review:\n{solution.visible}\n\n"
        f"{focus}\n\n{VERDICT_FORMAT}"
    )


def improvement_prompt(query: str, solution: MarsSolution, feedback: Sequence[str]) -> str:
    reviews = "\n\n".join(f"Review {i + 1}:\n{text}" for i, text in enumerate(feedback))
    return (
        f"Problem:\n{query}\n\nYour earlier solution did not pass review:\n{solution.visible}\n\n"
        f"{reviews}\n\n"
        "Write a complete corrected solution from the beginning, not a list of edits. Fix every valid "
        "issue; where a reviewer is mistaken, keep your reasoning and show why it holds. Check the final "
        "result again before you state it."
    )


def _synthesis_blocks(solutions: Sequence[MarsSolution]) -> str:
    blocks = []
    for index, solution in enumerate(solutions):
        reviews = solution.current_verifications()
        verdicts = ", ".join(f"{r.verdict.value} ({r.score:.2f})" for r in reviews) or "not reviewed"
        issues = [issue for r in reviews for issue in r.issues]
        issue_text = "".join(f"\n- {issue}" for issue in issues) if issues else " none"
        blocks.append(
            f"### Solution {index + 1}\n{solution.visible}\n\n"
            f"Extracted answer: {solution.answer or 'none found'}\n"
            f"Reviews: {verdicts}\nReported issues:{issue_text}"
        )
    return "\n\n".join(blocks)


def synthesis_prompt(query: str, solutions: Sequence[MarsSolution]) -> str:
    """The synthesis call without the caller's tools: the flattened problem, the solutions, the instruction."""
    return (
        f"Problem:\n{query}\n\nNo solution was verified and the answers do not agree.\n\n"
        f"{_synthesis_blocks(solutions)}\n\n"
        "Work out which answer is right, checking the disputed steps yourself, and write the final "
        "solution in full, ending with the final answer as \\boxed{answer} where the task has one."
    )


def synthesis_note(solutions: Sequence[MarsSolution]) -> str:
    """The synthesis call with the caller's tools: its instructions, before the conversation's real turns.

    The conversation follows as the caller sent it (ending with the user's message or with the
    results of the tools the assistant called), so the note speaks of it as coming after: the
    team's solutions with their reviews, then the instruction, which leaves the model free to call
    a tool when the reply needs one.
    """
    return (
        "A team of solvers has worked on the user's latest message in the conversation that follows; their "
        f"solutions and the reviews of them are below.\n\n{_synthesis_blocks(solutions)}\n\n"
        "Reply to the conversation's last turn. Work out which answer is right, checking the disputed steps "
        "yourself and taking the conversation's tool results into account, and write the final solution in "
        "full, ending with the final answer as \\boxed{answer} where the task has one. If the reply needs a "
        "tool result that the conversation does not hold yet, call the tool instead."
    )
