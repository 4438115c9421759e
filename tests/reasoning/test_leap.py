"""LEAP: call graph and critical path, settings on the wire, no examples, malformed replies, failures, tools."""

from __future__ import annotations

import anyio
import pytest

from optillm_core import (
    AuthenticationError,
    GenerationSettings,
    ModelProfile,
    PhaseStarted,
    Prompt,
    RateLimitError,
    default_registry,
)
from optillm_core.testing import CLAUDE_OPUS, O3_MINI, FunctionClient, Reply, sequential_depth
from optillm_reasoning import LeapConfig, LeapOptimizer
from optillm_reasoning._leap_prompts import answer_prompt

from ..tools_support import CALL, WEATHER, WITH_TOOLS
from ._support import EXAMPLES, FEW_SHOT, FINAL, HIGH_LEVEL, LOW_LEVEL, LeapModel, user_text

pytestmark = pytest.mark.anyio

SYSTEM = "Answer with a number."


def kinds(client: FunctionClient) -> list[str]:
    names = {
        "Look for worked examples": "examples",
        "make one deliberate mistake": "mistake",
        "Compare the attempt with the correct answer": "low",
        "Summarize these insights": "high",
    }
    out = []
    for request in client.requests:
        text = request.user_text
        out.append(next((name for marker, name in names.items() if marker in text), "answer"))
    return out


async def test_the_whole_chain_runs_in_five_round_trips_and_answers_with_the_principles() -> None:
    client = FunctionClient(LeapModel(), latency=0.01)
    events: list[object] = []
    solution = await LeapOptimizer().optimize(FEW_SHOT, client, system_prompt=SYSTEM, events=events.append)

    assert kinds(client) == ["examples", "mistake", "mistake", "low", "low", "high", "answer"]
    assert sequential_depth(client.requests) == 5
    assert solution.answer == FINAL
    assert solution.metadata.llm_calls == 7  # upstream's 2k + 3, k = 2
    assert all(r.system_text == SYSTEM for r in client.requests)
    extraction, mistake_1, mistake_2, low_1, low_2, high, final = client.requests
    assert FEW_SHOT in extraction.user_text
    assert {mistake_1.user_text.split("\n")[0], mistake_2.user_text.split("\n")[0]} == {
        "Question: What is 3 + 4 * 2?",
        "Question: What is 10 - 2 * 3?",
    }
    assert "The correct answer: 11" in low_1.user_text + low_2.user_text
    assert "The attempt's answer: 14" in low_1.user_text
    assert high.user_text.count(LOW_LEVEL) == 2
    assert final.user_text == answer_prompt(FEW_SHOT, HIGH_LEVEL)
    assert final.user_text.endswith("Q: What is 6 + 6 * 6?")  # the question keeps the last word
    extras = solution.metadata.extras
    assert extras["examples"] == EXAMPLES
    assert [m["correct"] for m in extras["mistakes"]] == ["11", "4"]
    assert extras["low_level_principles"] == [LOW_LEVEL, LOW_LEVEL]
    assert extras["principles"] == HIGH_LEVEL.splitlines()
    assert HIGH_LEVEL in solution.reasoning
    phases = [(e.phase, e.round) for e in events if isinstance(e, PhaseStarted)]
    assert [p for p, _ in phases if p != "low_level_principles"] == [
        "examples",
        "mistakes",
        "high_level_principles",
        "answer",
    ]


async def test_the_critical_path_stays_five_for_many_examples() -> None:
    examples = [{"question": f"What is {i} + {i} * 2?", "answer": str(3 * i)} for i in range(2, 10)]
    client = FunctionClient(LeapModel(examples=examples, attempt_answer="0"), latency=0.01)
    solution = await LeapOptimizer().optimize(FEW_SHOT, client)
    assert solution.metadata.llm_calls == 2 * 8 + 3
    assert sequential_depth(client.requests) == 5
    assert client.max_in_flight == 8


async def test_max_examples_caps_the_examples_learned_from() -> None:
    client = FunctionClient(LeapModel())
    solution = await LeapOptimizer(LeapConfig(max_examples=1)).optimize(FEW_SHOT, client)
    assert kinds(client) == ["examples", "mistake", "low", "high", "answer"]
    assert len(solution.metadata.extras["examples"]) == 1


async def test_a_query_without_examples_is_answered_directly_in_two_calls() -> None:
    client = FunctionClient(LeapModel(examples=[]), latency=0.01)
    optimizer = LeapOptimizer()
    planned = optimizer.planned_calls(client)
    solution = await optimizer.optimize("What is 6 + 6 * 6?", client, system_prompt=SYSTEM)
    assert kinds(client) == ["examples", "answer"]
    assert client.requests[1].user_text == "What is 6 + 6 * 6?"  # as upstream: a direct answer, no principles
    assert planned == solution.metadata.llm_calls == 2
    assert sequential_depth(client.requests) == 2
    assert solution.metadata.extras["examples_readable"] is True
    assert solution.metadata.extras["principles"] == []
    assert "no worked examples" in solution.reasoning


async def test_planned_calls_are_the_fewest_a_run_makes() -> None:
    client = FunctionClient(LeapModel())
    optimizer = LeapOptimizer()
    solution = await optimizer.optimize(FEW_SHOT, client)
    assert solution.metadata.llm_calls == optimizer.planned_calls(client) + 2 * 2 + 1


@pytest.mark.parametrize(
    "extraction",
    [
        "There are two examples, 3 + 4 * 2 = 11 and 10 - 2 * 3 = 4.",
        "<output>[{'question': 'What is 3 + 4 * 2?', 'answer': '11'}]</output>",
        '<output>[{"q": "What is 3 + 4 * 2?", "a": "11"}]</output>',
        '<output>{"question": "What is 3 + 4 * 2?", "answer": "11"}</output>',
    ],
    ids=["prose", "python-quotes", "wrong-keys", "not-a-list"],
)
async def test_unreadable_examples_mean_a_direct_answer(extraction: str) -> None:
    client = FunctionClient(LeapModel(extraction=extraction))
    solution = await LeapOptimizer().optimize(FEW_SHOT, client)
    assert kinds(client) == ["examples", "answer"]
    assert solution.answer == FINAL
    assert solution.metadata.extras["examples_readable"] is False
    assert "could not be read" in solution.reasoning


async def test_examples_in_a_code_fence_without_tags_are_read() -> None:
    extraction = '```json\n[{"question": "What is 3 + 4 * 2?", "answer": 11}]\n```'
    client = FunctionClient(LeapModel(extraction=extraction))
    solution = await LeapOptimizer().optimize(FEW_SHOT, client)
    assert solution.metadata.extras["examples"] == [EXAMPLES[0]]
    assert kinds(client) == ["examples", "mistake", "low", "high", "answer"]


async def test_an_attempt_that_gets_the_answer_right_teaches_nothing() -> None:
    client = FunctionClient(LeapModel(attempt_answer="11"))  # right for example 1, wrong for example 2
    solution = await LeapOptimizer().optimize(FEW_SHOT, client)
    assert kinds(client) == ["examples", "mistake", "mistake", "low", "high", "answer"]
    assert [m["correct"] for m in solution.metadata.extras["mistakes"]] == ["4"]


async def test_no_mistake_at_all_skips_the_principles() -> None:
    model = LeapModel(examples=[EXAMPLES[0]], attempt_answer="11")
    client = FunctionClient(model)
    solution = await LeapOptimizer().optimize(FEW_SHOT, client)
    assert kinds(client) == ["examples", "mistake", "answer"]
    assert client.requests[-1].user_text == FEW_SHOT
    assert "No mistake could be analysed" in solution.reasoning


async def test_principles_without_output_tags_are_the_whole_reply() -> None:
    model = LeapModel(low_level="<think>hm</think>Always multiply first.", high_level="Check precedence.")
    client = FunctionClient(model)
    solution = await LeapOptimizer().optimize(FEW_SHOT, client)
    assert solution.metadata.extras["low_level_principles"] == ["Always multiply first."] * 2
    assert solution.metadata.extras["principles"] == ["Check precedence."]
    assert "Check precedence." in client.requests[-1].user_text


async def test_an_empty_high_level_list_falls_back_to_the_low_level_principles() -> None:
    client = FunctionClient(LeapModel(high_level="<output></output>"))
    solution = await LeapOptimizer().optimize(FEW_SHOT, client)
    assert solution.metadata.extras["principles"] == [LOW_LEVEL, LOW_LEVEL]
    assert LOW_LEVEL in client.requests[-1].user_text


async def test_each_phase_gets_its_settings_and_the_caller_s_by_the_one_rule() -> None:
    client = FunctionClient(LeapModel())
    caller = GenerationSettings(temperature=0.3, max_tokens=1000, seed=7, stop=("###",))
    await LeapOptimizer().optimize(FEW_SHOT, client, settings=caller)
    by_kind = dict(zip(kinds(client), client.requests, strict=False))
    assert {r.settings.max_tokens for r in client.requests} == {1000}
    for judge in ("examples", "low", "high"):
        settings = by_kind[judge].settings
        assert (settings.temperature, settings.seed, settings.stop) == (None, None, None)
    assert by_kind["mistake"].settings.temperature == 0.3  # an answer call: the caller's temperature
    assert by_kind["mistake"].settings.stop is None
    final = by_kind["answer"].settings
    assert (final.temperature, final.seed, final.stop) == (0.3, 7, ("###",))
    assert all(r.settings.tools is None for r in client.requests)


async def test_defaults_on_the_wire_and_a_pinned_mistake_temperature() -> None:
    client = FunctionClient(LeapModel())
    await LeapOptimizer().optimize(FEW_SHOT, client)
    temperatures = dict(zip(kinds(client), (r.settings.temperature for r in client.requests), strict=False))
    assert temperatures == {"examples": None, "mistake": 0.7, "low": None, "high": None, "answer": None}
    assert {r.settings.max_tokens for r in client.requests} == {4096}

    pinned = FunctionClient(LeapModel())
    config = LeapConfig(mistake_temperature=0.9, answer_temperature=0.1)
    await LeapOptimizer(config).optimize(FEW_SHOT, pinned, settings=GenerationSettings(temperature=0.3))
    temperatures = dict(zip(kinds(pinned), (r.settings.temperature for r in pinned.requests), strict=False))
    assert (temperatures["mistake"], temperatures["answer"]) == (0.9, 0.1)


@pytest.mark.parametrize("profile", [O3_MINI, CLAUDE_OPUS], ids=["o3-mini", "claude-opus"])
async def test_a_model_that_refuses_temperature_gets_none_and_the_run_completes(profile: ModelProfile) -> None:
    client = FunctionClient(LeapModel(), profile=profile)
    solution = await LeapOptimizer().optimize(FEW_SHOT, client, settings=GenerationSettings(temperature=0.5))
    assert client.refused == []
    assert all(r.settings.temperature is None for r in client.requests)
    assert solution.answer == FINAL
    assert "temperature" in solution.metadata.dropped_settings


async def test_a_401_while_analysing_a_mistake_ends_the_run_with_the_provider_message() -> None:
    model = LeapModel()

    def reply(prompt: Prompt, settings: GenerationSettings) -> str | Reply | Exception:
        if "Compare the attempt" in user_text(prompt):
            return AuthenticationError("Incorrect API key provided: sk-…abcd", status_code=401)
        return model(prompt, settings)

    client = FunctionClient(reply)
    with pytest.raises(AuthenticationError, match="Incorrect API key"):
        await LeapOptimizer().optimize(FEW_SHOT, client)
    assert "answer" not in kinds(client)


async def test_a_rate_limited_example_is_lost_and_the_others_go_on() -> None:
    model = LeapModel()

    def reply(prompt: Prompt, settings: GenerationSettings) -> str | Reply | Exception:
        if "Question: What is 3 + 4 * 2?" in user_text(prompt) and "deliberate" in user_text(prompt):
            return RateLimitError("Rate limit reached", status_code=429)
        return model(prompt, settings)

    client = FunctionClient(reply)
    solution = await LeapOptimizer().optimize(FEW_SHOT, client)
    assert [m["correct"] for m in solution.metadata.extras["mistakes"]] == ["4"]
    assert solution.answer == FINAL


async def test_with_tools_only_the_answer_gets_them_with_the_principles_as_a_note() -> None:
    client = FunctionClient(LeapModel(final=Reply("", tool_calls=(CALL,))))
    solution = await LeapOptimizer().optimize("Q: Weather in Rome?\nA: sunny\n\nQ: Paris?", client, settings=WITH_TOOLS)
    *others, final = client.requests
    assert all(r.settings.tools is None for r in others)
    assert final.settings.tools == (WEATHER,)
    assert HIGH_LEVEL in (final.system_text or "")
    assert final.user_text == "Q: Weather in Rome?\nA: sunny\n\nQ: Paris?"  # the caller's own turn
    assert solution.tool_calls == (CALL,)
    assert solution.answer == ""


async def test_a_cut_off_answer_says_so() -> None:
    client = FunctionClient(LeapModel(examples=[], final=Reply("6 + 36 =", finish_reason="length")))
    solution = await LeapOptimizer().optimize(FEW_SHOT, client)
    assert solution.finish_reason == "length"


async def test_leap_is_registered() -> None:
    assert default_registry().get("leap").optimizer is LeapOptimizer
    assert LeapOptimizer.answers_with_tools


async def test_the_extraction_runs_before_anything_else() -> None:
    started: list[str] = []

    async def reply(prompt: Prompt, settings: GenerationSettings) -> str | Reply:
        started.append(user_text(prompt)[:20])
        await anyio.sleep(0.001)
        return LeapModel()(prompt, settings)

    await LeapOptimizer().optimize(FEW_SHOT, FunctionClient(reply))
    assert started[0].startswith("Here is a query")
