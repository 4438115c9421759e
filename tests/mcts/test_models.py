"""MCTS on real models: the caller-settings rule, models that refuse settings, output caps, thinking."""

from __future__ import annotations

import pytest

from optillm_core import GenerationSettings, ModelProfile, NoSolutions, Prompt
from optillm_core.testing import (
    CLAUDE_OPUS,
    CLAUDE_SONNET,
    DEEPSEEK_R1,
    DEEPSEEK_REASONER,
    O3_MINI,
    FunctionClient,
    Reply,
)
from optillm_core.toolkit import APPROACHES
from optillm_mcts import MctsConfig, MctsOptimizer

from .test_mcts import QUERY, ROOT_REPLIES, DialogueModel, kind

pytestmark = pytest.mark.anyio

JSON = {"type": "json_object"}
CALLER = GenerationSettings(
    temperature=0.3, top_p=0.9, max_tokens=300, stop=("\n\n",), seed=7, extra={"response_format": JSON}
)
O3 = O3_MINI
CLAUDE = CLAUDE_SONNET
OPUS = CLAUDE_OPUS
R1_TAGS = DEEPSEEK_R1
R1_API = DEEPSEEK_REASONER


class StyledModel(DialogueModel):
    """Root replies that say which approach they were asked for, so varied prompts give varied replies."""

    async def __call__(self, prompt: Prompt, settings: GenerationSettings) -> str | Reply:
        if kind(prompt) == "expand-root":
            approach = prompt.messages[-1].content.removesuffix(QUERY).strip()
            return f"Use reversed(xs). ({approach or 'as asked'})"
        return await super().__call__(prompt, settings)


def settings_by_kind(client: FunctionClient) -> dict[str, list[GenerationSettings]]:
    found: dict[str, list[GenerationSettings]] = {}
    for request in client.requests:
        found.setdefault(kind(request.prompt), []).append(request.settings)
    return found


async def test_the_caller_settings_reach_the_calls_the_rule_names() -> None:
    client = FunctionClient(DialogueModel(), native_n=True)
    await MctsOptimizer().optimize(QUERY, client, settings=CALLER)
    found = settings_by_kind(client)

    # The replies to the query are the answers the run returns one of: sampled as returned answers,
    # with the caller's response_format; its stop cuts them here, as the provider would have.
    (root,) = found["expand-root"]
    assert (root.n, root.temperature, root.top_p, root.seed, root.max_tokens) == (2, 0.3, 0.9, 7, 300)
    assert (root.stop, root.extra) == (None, {"response_format": JSON})
    # Predicted user turns and rollouts are answer calls: the caller's sampling, a seed each, no stop.
    for name in ("predict", "generate"):
        assert {(s.temperature, s.top_p, s.max_tokens, s.stop) for s in found[name]} == {(0.3, 0.9, 300, None)}
        assert sorted(s.seed or 0 for s in found[name]) == [7, 8]
        assert all(s.extra == {} for s in found[name])
    # Evaluations are judge calls: their own temperature, only the caller's max_tokens.
    assert {(s.temperature, s.top_p, s.seed, s.stop, s.max_tokens) for s in found["evaluate"]} == {
        (0.1, None, None, None, 256)
    }


async def test_fanned_out_replies_get_a_seed_each() -> None:
    client = FunctionClient(DialogueModel())
    await MctsOptimizer().optimize(QUERY, client, settings=GenerationSettings(seed=7))
    assert sorted(s.seed or 0 for s in settings_by_kind(client)["expand-root"]) == [7, 8]


async def test_a_generation_temperature_the_config_sets_is_kept() -> None:
    client = FunctionClient(DialogueModel(), native_n=True)
    config = MctsConfig(generation_temperature=0.8)
    await MctsOptimizer(config).optimize(QUERY, client, settings=GenerationSettings(temperature=0.3))
    found = settings_by_kind(client)
    assert {s.temperature for name in ("expand-root", "predict", "generate") for s in found[name]} == {0.8}
    assert {s.temperature for s in found["evaluate"]} == {0.1}


@pytest.mark.parametrize(("profile", "native_n"), [(O3, True), (OPUS, False)], ids=["o3-native-n", "opus-4.7"])
async def test_on_a_model_that_refuses_temperature_sibling_replies_are_asked_differently(
    profile: ModelProfile, native_n: bool
) -> None:
    client = FunctionClient(StyledModel(), native_n=native_n, profile=profile)
    config = MctsConfig(num_simulations=3)
    solution = await MctsOptimizer(config).optimize(QUERY, client)

    assert client.refused == []
    assert all(r.settings.temperature is None and r.settings.top_p is None for r in client.requests)
    expansions = [r for r in client.requests if kind(r.prompt) == "expand-root"]
    assert [r.settings.n for r in expansions] == [1, 1, 1]
    assert len({r.user_text for r in expansions}) == 3
    assert len({c["reply"] for c in solution.metadata.extras["root_children"]}) == 3
    # The dialogue that follows holds the user's message as the user wrote it.
    rollouts = [r for r in client.requests if kind(r.prompt) == "generate"]
    assert {r.messages[-3].content for r in rollouts} == {QUERY}
    if profile.requires_max_tokens:
        assert all(r.settings.max_tokens is not None for r in client.requests)


async def test_on_claude_replies_vary_by_temperature_within_its_range() -> None:
    client = FunctionClient(DialogueModel(), profile=CLAUDE)
    solution = await MctsOptimizer().optimize(
        QUERY, client, settings=GenerationSettings(temperature=1.4, top_p=0.9, seed=2)
    )
    assert client.refused == []
    assert set(solution.metadata.dropped_settings) == {"temperature", "top_p", "seed"}
    found = settings_by_kind(client)
    assert {(s.temperature, s.top_p, s.seed) for s in found["expand-root"]} == {(1.0, None, None)}
    assert len({r.user_text for r in client.requests if kind(r.prompt) == "expand-root"}) == 1
    # No caller max_tokens: each call sends its own limit, which Claude requires.
    assert {name: {s.max_tokens for s in found[name]} for name in found} == {
        "expand-root": {4096},
        "predict": {1024},
        "generate": {4096},
        "evaluate": {256},
    }


@pytest.mark.parametrize("cap", [2000, 200])
async def test_no_request_asks_for_more_than_the_models_cap(cap: int) -> None:
    profile = ModelProfile(name="small-cap", max_output_tokens=cap, native_n=True)
    client = FunctionClient(DialogueModel(), native_n=True, profile=profile)
    await MctsOptimizer().optimize(QUERY, client)
    assert client.refused == []
    found = settings_by_kind(client)
    limits = {"expand-root": 4096, "predict": 1024, "generate": 4096, "evaluate": 256}
    assert {name: {s.max_tokens for s in found[name]} for name in found} == {
        name: {min(limit, cap)} for name, limit in limits.items()
    }


async def test_varied_replies_get_the_toolkits_approach_before_the_users_message() -> None:
    client = FunctionClient(StyledModel(), profile=OPUS)
    await MctsOptimizer(MctsConfig(num_simulations=3)).optimize(QUERY, client)
    asked = [r.user_text for r in client.requests if kind(r.prompt) == "expand-root"]
    assert sorted(asked) == sorted([QUERY] + [f"{APPROACHES[i]}\n\n{QUERY}" for i in (1, 2)])


async def test_the_callers_stop_cuts_the_replies_to_the_query_before_the_dialogue_goes_on() -> None:
    model = DialogueModel(root_replies=("Use reversed(xs).\n\nOr slice it.", "Call xs.reverse()."))
    client = FunctionClient(model, native_n=True)
    solution = await MctsOptimizer().optimize(QUERY, client, settings=GenerationSettings(stop=("\n\n",)))
    children = [c["reply"] for c in solution.metadata.extras["root_children"]]
    assert children == ["Use reversed(xs).", "Call xs.reverse()."]
    assert all("Or slice it" not in m.content for r in client.requests[1:] for m in r.messages)
    assert solution.answer in children
    assert solution.finish_reason == "stop"


async def test_native_n_is_chunked_by_the_models_max_n() -> None:
    profile = ModelProfile(name="max-n-2", max_output_tokens=4096, native_n=True, max_n=2)
    client = FunctionClient(DialogueModel(), native_n=True, profile=profile)
    optimizer = MctsOptimizer(MctsConfig(num_simulations=3))
    solution = await optimizer.optimize(QUERY, client)
    assert sorted(r.settings.n for r in client.requests if kind(r.prompt) == "expand-root") == [1, 2]
    assert len(solution.metadata.extras["root_children"]) == 3
    assert optimizer.planned_calls(client) == solution.metadata.llm_calls


class ThinkingModel(DialogueModel):
    """Every reply thinks first; an evaluation thinks of a low score and then writes a high one."""

    async def __call__(self, prompt: Prompt, settings: GenerationSettings) -> str | Reply:
        reply = await super().__call__(prompt, settings)
        text = reply.text if isinstance(reply, Reply) else reply
        if kind(prompt) == "evaluate":
            return Reply("0.9", thinking="Maybe 0.1? SECRET")
        return Reply(text, thinking=f"SECRET thoughts before: {text}")


@pytest.mark.parametrize("profile", [R1_TAGS, R1_API], ids=["think-tags", "reasoning-content"])
@pytest.mark.parametrize("native_n", [True, False])
async def test_thinking_never_reaches_a_prompt_a_score_or_the_answer(profile: ModelProfile, native_n: bool) -> None:
    client = FunctionClient(ThinkingModel(), native_n=native_n, profile=profile)
    solution = await MctsOptimizer().optimize(QUERY, client)

    assert client.refused == []
    assert not any("SECRET" in m.content for r in client.requests for m in r.messages)
    assert solution.answer in ROOT_REPLIES
    assert solution.thinking == f"SECRET thoughts before: {solution.answer}"
    assert [s["score"] for s in solution.metadata.extras["simulations"]] == [0.9, 0.9]
    assert all("SECRET" not in c["reply"] for c in solution.metadata.extras["root_children"])
    assert "SECRET" not in solution.reasoning


@pytest.mark.parametrize("profile", [R1_TAGS, R1_API], ids=["think-tags", "reasoning-content"])
async def test_replies_with_only_thinking_are_not_children(profile: ModelProfile) -> None:
    thinking_only = Reply("", thinking="I keep thinking SECRET", finish_reason="length")
    model = DialogueModel(root_replies=(thinking_only, "Use reversed(xs)."))
    solution = await MctsOptimizer().optimize(QUERY, FunctionClient(model, native_n=True, profile=profile))
    assert [c["reply"] for c in solution.metadata.extras["root_children"]] == ["Use reversed(xs)."]
    assert solution.answer == "Use reversed(xs)."

    nothing = DialogueModel(root_replies=(thinking_only,))
    with pytest.raises(NoSolutions, match="held only thinking"):
        await MctsOptimizer().optimize(QUERY, FunctionClient(nothing, native_n=True, profile=profile))


async def test_an_evaluation_with_only_thinking_counts_as_neutral() -> None:
    class Silent(DialogueModel):
        async def __call__(self, prompt: Prompt, settings: GenerationSettings) -> str | Reply:
            if kind(prompt) == "evaluate":
                return Reply("", thinking="It deserves 0.2, no, 0.95 SECRET", finish_reason="length")
            return await super().__call__(prompt, settings)

    solution = await MctsOptimizer().optimize(QUERY, FunctionClient(Silent(), native_n=True, profile=R1_TAGS))
    assert [(s["score"], s["score_parsed"]) for s in solution.metadata.extras["simulations"]] == [(0.5, False)] * 2
