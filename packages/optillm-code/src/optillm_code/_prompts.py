"""The prompts of the code strategies, in our own words, with the structure and purpose of upstream's.

Each prompt puts its material first and what it asks for in its last paragraph.
"""

from __future__ import annotations as _annotations

from collections.abc import Sequence

__all__ = (
    "derived_observations_prompt",
    "describe_instruction",
    "implement_note",
    "implement_prompt",
    "merge_note",
    "merge_prompt",
    "observations_prompt",
    "plan_prompt",
)

# -- round-trip optimization ------------------------------------------------------------------------

describe_instruction = (
    "Now write, in plain words, an instruction from which you could write this exact code again without "
    "seeing it: what it takes as input, what it must return or do, the steps and data structures it uses, "
    "and the edge cases it handles. Write the instruction only, with no code."
)
"""Asked after the first version, in the same conversation (upstream's "summarize as an instruction")."""


def _versions(first: str, second: str) -> str:
    return f"First version (C1):\n```\n{first}\n```\n\nSecond version (C2):\n```\n{second}\n```"


_MERGE = (
    "These are two independent versions of the code for the same task; they differ. Take what is correct "
    "and best in each, fix what either gets wrong, and write one final version of the code. Reply with the "
    "final code only, in one code block."
)


def merge_prompt(query: str, first: str, second: str) -> str:
    """The merge call without tools: the task, both versions, then the instruction."""
    return f"Task:\n{query.strip()}\n\n{_versions(first, second)}\n\n{_MERGE}"


def merge_note(first: str, second: str) -> str:
    """The merge call with tools: the versions and the instruction go after the caller's system prompt."""
    return (
        "Two independent versions of the code for the user's latest request were written:\n\n"
        f"{_versions(first, second)}\n\n{_MERGE} If the task needs one of the available tools first, call it."
    )


# -- PlanSearch -------------------------------------------------------------------------------------

_NO_CODE = "Do not write any code yet."


def observations_prompt(problem: str, count: int) -> str:
    """Step 1: first observations about the problem (upstream: 3), as hints, without code."""
    return (
        f"Problem:\n{problem.strip()}\n\n"
        f"List {count} useful observations about this problem that are correct but not obvious: facts, "
        "patterns, special cases or properties a solver could build on, like hints. Be creative and look "
        f"past the first idea that comes to mind. Number them, one per line. {_NO_CODE}"
    )


def _numbered(observations: Sequence[str]) -> str:
    return "\n".join(f"{i}. {text}" for i, text in enumerate(observations, start=1))


def derived_observations_prompt(problem: str, observations: Sequence[str], count: int) -> str:
    """Step 2: new observations that follow from the first ones (upstream: 2)."""
    return (
        f"Problem:\n{problem.strip()}\n\nObservations so far:\n{_numbered(observations)}\n\n"
        f"Building on the observations above, list {count} new observations about the problem that follow "
        "from combining or extending them and are correct and useful. Number them, one per line. "
        f"{_NO_CODE}"
    )


def plan_prompt(problem: str, observations: Sequence[str]) -> str:
    """Step 3: a plan in natural language that quotes the observations it uses."""
    return (
        f"Problem:\n{problem.strip()}\n\nObservations:\n{_numbered(observations)}\n\n"
        "Using these observations, work out how to solve the problem and write the plan in plain words, "
        "step by step. Think beyond the first idea; simple, creative ideas are welcome. Before each step, "
        f"quote exactly the observations it relies on. {_NO_CODE}"
    )


_IMPLEMENT = (
    "Write a complete, correct Python program that follows this plan, solves the problem and passes all "
    "of its tests. Reply with the program only, in one code block."
)


def implement_prompt(problem: str, plan: str) -> str:
    """Step 4 without tools: the problem, the plan, then the request for code."""
    return f"Problem:\n{problem.strip()}\n\nPlan:\n{plan.strip()}\n\n{_IMPLEMENT}"


def implement_note(plan: str) -> str:
    """Step 4 with tools: the plan and the request go after the caller's system prompt."""
    return (
        f"A plan for solving the user's latest request was worked out:\n\n{plan.strip()}\n\n{_IMPLEMENT} "
        "If the task needs one of the available tools first, call it."
    )
