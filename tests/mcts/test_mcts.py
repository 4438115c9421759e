"""MCTS end to end on test doubles: call graph, settings on the wire, the evaluator's say, failures, budgets."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import anyio
import pytest

from optillm_core import (
    AuthenticationError,
    Budget,
    GenerationSettings,
    InvalidConfiguration,
    Message,
    NoSolutions,
    OptimizerEvent,
    PhaseStarted,
    Prompt,
    ProviderUnavailable,
    RunContext,
    RunFailed,
    default_registry,
)
from optillm_core.testing import FaultyClient, FunctionClient, RecordedRequest, Reply, sequential_depth
from optillm_mcts import MctsConfig, MctsOptimizer, NodeExpanded, SimulationFinished
from optillm_mcts._prompts import EVALUATE, PREDICT_USER
from optillm_mcts._search import Search
from optillm_mcts._tree import Node

pytestmark = pytest.mark.anyio

QUERY = "How do I reverse a list in Python?"
SYSTEM = "You are a concise Python tutor."
ROOT_REPLIES = ("Use reversed(xs).", "Call xs.reverse().", "Slice it: xs[::-1].")


def kind(prompt: Prompt) -> str:
    last = prompt.messages[-1].content
    if last == EVALUATE:
        return "evaluate"
    if last == PREDICT_USER:
        return "predict"
    return "expand-root" if len(prompt.messages) == 1 else "generate"


def root_reply_in(prompt: Prompt) -> str:
    return next(m.content for m in prompt.messages if m.role == "assistant")


class DialogueModel:
    """A fake model that plays every MCTS role; evaluations score by which root reply the dialogue started with."""

    def __init__(
        self,
        scores: Mapping[str, str] | None = None,
        *,
        root_replies: tuple[str | Reply, ...] = ROOT_REPLIES,
        prediction: str = "Does that copy the list?",
        delay: float = 0.0,
    ) -> None:
        self.scores = scores or {}
        self.root_replies = itertools.cycle(root_replies)
        self.prediction = prediction
        self.delay = delay
        self.generated = itertools.count(1)

    async def __call__(self, prompt: Prompt, settings: GenerationSettings) -> str | Reply:
        if self.delay:
            await anyio.sleep(self.delay)
        role = kind(prompt)
        if role == "expand-root":
            return next(self.root_replies)
        if role == "predict":
            return self.prediction
        if role == "evaluate":
            return self.scores.get(root_reply_in(prompt), "0.5")
        return f"Turn {next(self.generated)} after {root_reply_in(prompt)!r}"


def kinds(requests: list[RecordedRequest]) -> list[str]:
    return [kind(r.prompt) for r in requests]


async def test_default_call_graph_and_settings_with_native_n() -> None:
    client = FunctionClient(DialogueModel(), native_n=True)
    solution = await MctsOptimizer().optimize(QUERY, client, system_prompt=SYSTEM)

    # Two simulations rate two replies, so the root samples two; their simulations run concurrently.
    seen = kinds(client.requests)
    assert seen[:3] == ["expand-root"] + ["predict"] * 2
    assert sorted(seen[3:]) == ["evaluate"] * 2 + ["generate"] * 2
    expected = {
        "expand-root": (2, 1.0, 4096),
        "predict": (1, 1.0, 1024),
        "generate": (1, 1.0, 4096),
        "evaluate": (1, 0.1, 256),
    }
    for request in client.requests:
        assert (request.settings.n, request.settings.temperature, request.settings.max_tokens) == expected[
            kind(request.prompt)
        ]
    assert all(r.system_text == SYSTEM for r in client.requests)
    assert solution.metadata.llm_calls == 7
    assert solution.metadata.iterations == 2
    assert solution.answer in ROOT_REPLIES


async def test_dialogue_turns_reach_the_model_in_order() -> None:
    client = FunctionClient(DialogueModel(), native_n=True)
    await MctsOptimizer().optimize(QUERY, client, system_prompt=SYSTEM)

    predict = next(r for r in client.requests if kind(r.prompt) == "predict")
    assert [m.role for m in predict.messages] == ["system", "user", "assistant", "user"]
    rollout = next(r for r in client.requests if kind(r.prompt) == "generate")
    assert rollout.messages[1:] == (
        Message.user(QUERY),
        Message.assistant(root_reply_in(rollout.prompt)),
        Message.user("Does that copy the list?"),
    )
    evaluation = next(r for r in client.requests if kind(r.prompt) == "evaluate")
    assert [m.role for m in evaluation.messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert evaluation.messages[4].content.startswith("Turn ")


async def test_without_native_n_the_expansion_fans_out() -> None:
    client = FunctionClient(DialogueModel())
    solution = await MctsOptimizer().optimize(QUERY, client)
    assert kinds(client.requests)[:2] == ["expand-root"] * 2
    assert [r.settings.n for r in client.requests] == [1] * 8
    assert solution.metadata.llm_calls == 8


@pytest.mark.parametrize("native_n", [True, False])
async def test_critical_path_at_defaults(native_n: bool) -> None:
    client = FunctionClient(DialogueModel(delay=0.01), native_n=native_n)
    await MctsOptimizer().optimize(QUERY, client)
    # expansion, predictions (concurrent), both rollouts (concurrent), both evaluations (concurrent)
    assert sequential_depth(client.requests) == 4
    assert len(client.requests) == (7 if native_n else 8)
    assert client.max_in_flight >= 2


@pytest.mark.parametrize("native_n", [True, False])
async def test_four_simulations_rate_the_root_children_then_expand_the_best(native_n: bool) -> None:
    client = FunctionClient(DialogueModel({ROOT_REPLIES[1]: "0.9"}, delay=0.01), native_n=native_n)
    solution = await MctsOptimizer(MctsConfig(num_simulations=4)).optimize(QUERY, client)
    # 3 root children rated concurrently (4 round-trips); the best one expanded with the one reply the
    # last simulation can rate, predicted, rolled out and rated (4 more).
    assert sequential_depth(client.requests) == 8
    assert len(client.requests) == (14 if native_n else 16)
    assert [c["visits"] for c in solution.metadata.extras["root_children"]] == [1, 2, 1]


@pytest.mark.parametrize(("high", "low"), [(ROOT_REPLIES[0], ROOT_REPLIES[1]), (ROOT_REPLIES[1], ROOT_REPLIES[0])])
async def test_the_evaluations_decide_the_answer(high: str, low: str) -> None:
    client = FunctionClient(DialogueModel({high: "0.9", low: "Score: 3/10"}), native_n=True)
    solution = await MctsOptimizer().optimize(QUERY, client)
    assert solution.answer == high
    children = solution.metadata.extras["root_children"]
    assert [c["visits"] for c in children] == [1, 1]
    assert sorted(c["mean_value"] for c in children) == pytest.approx([0.3, 0.9])
    assert "<- chosen" in next(line for line in solution.reasoning.splitlines() if repr(high)[:20] in line)


async def test_garbage_evaluations_count_as_neutral_and_are_reported() -> None:
    model = DialogueModel({r: "The conversation is pleasant." for r in ROOT_REPLIES})
    events: list[OptimizerEvent] = []
    solution = await MctsOptimizer().optimize(QUERY, FunctionClient(model, native_n=True), events=events.append)
    assert solution.answer == ROOT_REPLIES[0]
    assert [s["score"] for s in solution.metadata.extras["simulations"]] == [0.5, 0.5]
    assert not any(s["score_parsed"] for s in solution.metadata.extras["simulations"])
    finished = [e for e in events if isinstance(e, SimulationFinished)]
    assert [e.score_parsed for e in finished] == [False, False]
    assert "no rating in the evaluation; neutral" in solution.reasoning


async def test_events_per_simulation() -> None:
    events: list[OptimizerEvent] = []
    model = DialogueModel({ROOT_REPLIES[0]: "0.4", ROOT_REPLIES[1]: "0.8"})
    await MctsOptimizer().optimize(QUERY, FunctionClient(model, native_n=True), events=events.append)
    started = [e for e in events if isinstance(e, PhaseStarted)]
    assert {e.phase for e in started} <= set(MctsOptimizer.phases)
    # Each part of a simulation is the phase it enters, the simulation's number its round.
    assert [e.label for e in started[:2]] == ["replies to the query 1", "user turns 1"]
    assert sorted(e.label for e in started[2:]) == ["evaluations 1", "evaluations 2", "rollouts 1", "rollouts 2"]
    expanded = [e for e in events if isinstance(e, NodeExpanded)]
    assert [(e.simulation, e.depth, e.children) for e in expanded] == [(1, 0, 2)]
    finished = [e for e in events if isinstance(e, SimulationFinished)]
    by_simulation = sorted(finished, key=lambda e: e.simulation)
    assert [(e.simulation, e.root_child, e.score) for e in by_simulation] == [(1, 1, 0.4), (2, 2, 0.8)]
    assert finished[-1].visits == [1, 1]
    assert finished[-1].values == [0.4, 0.8]


async def test_caller_max_tokens_caps_every_call() -> None:
    client = FunctionClient(DialogueModel(), native_n=True)
    await MctsOptimizer().optimize(QUERY, client, settings=GenerationSettings(max_tokens=300, n=5, top_p=0.5))
    by_kind = {kind(r.prompt): r.settings for r in client.requests}
    assert {k: s.max_tokens for k, s in by_kind.items()} == {
        "expand-root": 300,
        "generate": 300,
        "predict": 300,
        "evaluate": 256,
    }
    assert by_kind["expand-root"].n == 2
    assert {s.n for k, s in by_kind.items() if k != "expand-root"} == {1}
    assert {k: s.top_p for k, s in by_kind.items()} == {
        "expand-root": 0.5,
        "generate": 0.5,
        "predict": 0.5,
        "evaluate": None,
    }


async def test_more_simulations_descend_and_expand_visited_children() -> None:
    scores = {ROOT_REPLIES[0]: "0.2", ROOT_REPLIES[1]: "0.9", ROOT_REPLIES[2]: "0.4"}
    config = MctsConfig(num_simulations=5, exploration_weight=0.0)
    events: list[OptimizerEvent] = []
    client = FunctionClient(DialogueModel(scores), native_n=True)
    solution = await MctsOptimizer(config).optimize(QUERY, client, events=events.append)

    children = solution.metadata.extras["root_children"]
    assert sum(c["visits"] for c in children) == 5
    assert solution.answer == ROOT_REPLIES[1]
    # After every root child was tried, pure exploitation goes down the best one, whose expansion
    # samples two replies: the two simulations left rate them.
    assert [c["visits"] for c in children] == [1, 3, 1]
    depths = [(e.simulation, e.depth, e.children) for e in events if isinstance(e, NodeExpanded)]
    assert depths == [(1, 0, 3), (4, 1, 2)]
    started = [e for e in events if isinstance(e, PhaseStarted)]
    assert {e.phase for e in started} == set(MctsOptimizer.phases)
    assert [e.label for e in started if e.phase in ("replies to the query", "deeper replies", "user turns")] == [
        "replies to the query 1",
        "user turns 1",
        "deeper replies 4",
        "user turns 4",
    ]
    assert solution.metadata.iterations == 5


async def test_deeper_rollouts_predict_between_turns() -> None:
    client = FunctionClient(DialogueModel(), native_n=True)
    await MctsOptimizer(MctsConfig(num_simulations=1, simulation_depth=2)).optimize(QUERY, client)
    assert kinds(client.requests) == ["expand-root", "predict", "generate", "predict", "generate", "evaluate"]
    assert client.requests[0].settings.n == 1
    evaluation = client.requests[-1]
    assert [m.role for m in evaluation.messages] == ["user", "assistant"] * 3 + ["user"]


async def test_depth_zero_evaluates_the_child_itself() -> None:
    client = FunctionClient(DialogueModel(), native_n=True)
    await MctsOptimizer(MctsConfig(simulation_depth=0)).optimize(QUERY, client)
    assert kinds(client.requests) == ["expand-root"] + ["predict"] * 2 + ["evaluate"] * 2


async def test_a_goodbye_ends_the_dialogue_before_the_rollout() -> None:
    client = FunctionClient(DialogueModel(prediction="Perfect, thanks. Goodbye!"), native_n=True)
    solution = await MctsOptimizer().optimize(QUERY, client)
    assert "generate" not in kinds(client.requests)
    assert solution.answer in ROOT_REPLIES


async def test_empty_replies_are_skipped_and_none_at_all_is_an_error() -> None:
    model = DialogueModel(root_replies=("", "Use reversed(xs).", "  "))
    solution = await MctsOptimizer().optimize(QUERY, FunctionClient(model, native_n=True))
    assert [c["reply"] for c in solution.metadata.extras["root_children"]] == ["Use reversed(xs)."]
    assert solution.answer == "Use reversed(xs)."

    empty = DialogueModel(root_replies=("",))
    events: list[OptimizerEvent] = []
    with pytest.raises(NoSolutions, match="only 0 usable sample"):
        await MctsOptimizer().optimize(QUERY, FunctionClient(empty, native_n=True), events=events.append)
    assert any(isinstance(e, RunFailed) for e in events)


async def test_truncated_replies_are_kept_and_marked() -> None:
    model = DialogueModel(root_replies=(Reply("Use rev", finish_reason="length"), "b", "c"))
    solution = await MctsOptimizer().optimize(QUERY, FunctionClient(model, native_n=True))
    assert solution.metadata.extras["root_children"][0]["truncated"] is True
    assert "[cut off]" in solution.reasoning


@pytest.mark.parametrize(
    ("root", "finish"), [(Reply("Use rev", finish_reason="length"), "length"), ("Use rev.", "stop")]
)
async def test_an_answer_cut_at_its_token_limit_says_so(root: Reply | str, finish: str) -> None:
    model = DialogueModel(root_replies=(root,))
    solution = await MctsOptimizer().optimize(QUERY, FunctionClient(model, native_n=True))
    assert solution.finish_reason == finish


def failing_at(kind_name: str) -> Callable[[int, Prompt, GenerationSettings], BaseException | None]:
    def rule(number: int, prompt: Prompt, settings: GenerationSettings) -> BaseException | None:
        return ProviderUnavailable("model server went away", status_code=503) if kind(prompt) == kind_name else None

    return rule


@pytest.mark.parametrize("kind_name", ["expand-root", "predict", "generate"])
async def test_a_failing_client_mid_run_raises_its_error(kind_name: str) -> None:
    """The replies to the query all fail, or a predicted turn or rollout fails: the run ends with the error.

    (An evaluation that fails retryably is absorbed: see test_evaluate.)
    """
    client = FaultyClient(FunctionClient(DialogueModel(delay=0.001), native_n=True), failing_at(kind_name))
    events: list[OptimizerEvent] = []
    with anyio.fail_after(5), pytest.raises(ProviderUnavailable, match="model server went away"):
        await MctsOptimizer().optimize(QUERY, client, events=events.append)
    assert any(isinstance(e, RunFailed) for e in events)


async def test_budget_cut_before_evaluations_returns_first_reply_marked() -> None:
    client = FunctionClient(DialogueModel(), native_n=True)
    solution = await MctsOptimizer().optimize(QUERY, client, budget=Budget(max_calls=2))
    assert solution.metadata.budget_exhausted is True
    assert solution.answer == ROOT_REPLIES[0]
    assert solution.metadata.llm_calls == 2


async def test_budget_cut_after_an_evaluation_returns_best_so_far() -> None:
    model = DialogueModel({ROOT_REPLIES[0]: "0.3", ROOT_REPLIES[1]: "0.9", ROOT_REPLIES[2]: "1.0"})
    config = MctsConfig(num_simulations=4)
    solution = await MctsOptimizer(config).optimize(
        QUERY, FunctionClient(model, native_n=True), budget=Budget(max_calls=10)
    )
    assert solution.metadata.budget_exhausted is True
    assert solution.answer == ROOT_REPLIES[2]
    assert "simulation(s)" in solution.reasoning


def test_config_errors_name_the_field() -> None:
    with pytest.raises(InvalidConfiguration, match="num_simulations"):
        MctsConfig(num_simulations=0)
    with pytest.raises(InvalidConfiguration, match="exploration_weight"):
        MctsOptimizer.from_options({"exploration_weight": -1})
    with pytest.raises(InvalidConfiguration, match="unknown field 'depth'"):
        MctsConfig.from_mapping({"depth": 2})


def test_registered_under_mcts() -> None:
    optimizer = default_registry().create("mcts", {"num_simulations": "3"})
    assert isinstance(optimizer, MctsOptimizer)
    assert optimizer.config.num_simulations == 3
    assert MctsConfig().model_dump() == {
        "max_concurrency": 16,
        "num_simulations": 2,
        "exploration_weight": 0.2,
        "simulation_depth": 1,
        "num_actions": 3,
        "generation_temperature": 1.0,
        "evaluation_temperature": 0.1,
        "max_history_length": 10,
        "generation_max_tokens": 4096,
        "prediction_max_tokens": 1024,
        "evaluation_max_tokens": 256,
    }


class ContentModel:
    """Replies and scores that depend only on the request's content, so any schedule gives the same tree."""

    def __init__(self, delays: dict[str, float]) -> None:
        self.delays = delays
        self.choices: dict[tuple[str, ...], int] = {}

    async def __call__(self, prompt: Prompt, settings: GenerationSettings) -> str:
        role = kind(prompt)
        await anyio.sleep(self.delays.get(role, 0.0))
        contents = tuple(m.content for m in prompt.messages)
        if role == "evaluate":
            return f"{sum(map(ord, ''.join(contents))) % 11 / 10:.1f}"
        if role == "predict":
            return f"question {len(contents)}"
        index = self.choices.get(contents, 0)
        self.choices[contents] = index + 1
        return f"reply {len(contents)}.{index}"


class SequentialSearch(Search):
    """The reference: each simulation starts only after every earlier one has been backed up."""

    def __init__(self, ctx: RunContext[MctsConfig]) -> None:
        super().__init__(ctx)
        self.started = 0

    async def _next_start(self) -> Node:
        self.started += 1
        while len(self.records) < self.started - 1:
            changed = self._changed
            await changed.wait()
        return await super()._next_start()


def tree_summary(node: Node) -> list[tuple[str, int, float]]:
    rows = [(node.reply, node.visits, round(node.value_sum, 6))]
    for child in node.children:
        rows += tree_summary(child)
    return rows


@pytest.mark.parametrize(
    "delays",
    [{}, {"evaluate": 0.01}, {"expand-root": 0.005, "generate": 0.01}, {"predict": 0.01, "evaluate": 0.002}],
)
async def test_overlapping_simulations_make_the_same_choices_as_a_sequential_search(
    delays: dict[str, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = MctsConfig(num_simulations=9, num_actions=2, exploration_weight=0.7, simulation_depth=1)
    searches: dict[str, Search] = {}

    def capture(cls: type[Search], label: str) -> Callable[[RunContext[MctsConfig]], Search]:
        def build(ctx: RunContext[MctsConfig]) -> Search:
            searches[label] = cls(ctx)
            return searches[label]

        return build

    results = {}
    for label, cls in (("sequential", SequentialSearch), ("overlapped", Search)):
        monkeypatch.setattr("optillm_mcts._optimizer.Search", capture(cls, label))
        client = FunctionClient(ContentModel(delays), native_n=True)
        solution = await MctsOptimizer(config).optimize(QUERY, client)
        prompts = sorted(str([(m.role, m.content) for m in r.messages]) for r in client.requests)
        results[label] = (solution.answer, tree_summary(searches[label].root), prompts)

    assert results["overlapped"] == results["sequential"]
    assert searches["overlapped"].root.visits == 9


def all_nodes(node: Node) -> list[Node]:
    return [node, *(n for child in node.children for n in all_nodes(child))]


@pytest.mark.parametrize(
    ("simulations", "actions", "depth"),
    [(2, 3, 1), (1, 3, 1), (3, 3, 0), (5, 3, 1), (7, 2, 1), (9, 4, 2), (20, 3, 1)],
)
@pytest.mark.parametrize("native_n", [True, False])
async def test_every_child_an_expansion_makes_is_evaluated(
    simulations: int, actions: int, depth: int, native_n: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    searches: list[Search] = []

    def build(ctx: RunContext[MctsConfig]) -> Search:
        searches.append(Search(ctx))
        return searches[-1]

    monkeypatch.setattr("optillm_mcts._optimizer.Search", build)
    config = MctsConfig(num_simulations=simulations, num_actions=actions, simulation_depth=depth, exploration_weight=1)
    client = FunctionClient(ContentModel({"evaluate": 0.002, "generate": 0.001}), native_n=native_n)
    solution = await MctsOptimizer(config).optimize(QUERY, client)

    # A node is expanded only after a simulation rated it, so every node visited means every
    # sampled reply was the leaf of a simulation: rolled out and evaluated.
    root = searches[0].root
    assert all(node.visits >= 1 for node in all_nodes(root))
    assert root.visits == simulations == solution.metadata.iterations
    assert sum(1 for r in client.requests if kind(r.prompt) == "evaluate") == simulations
    # The root samples exactly the replies that become its children.
    expansions = [r for r in client.requests if kind(r.prompt) == "expand-root"]
    assert sum(r.settings.n for r in expansions) == len(root.children) == min(actions, simulations)


async def test_a_reply_request_that_fails_retryably_loses_its_reply_and_the_search_goes_on() -> None:
    def rule(number: int, prompt: Prompt, settings: GenerationSettings) -> BaseException | None:
        return ProviderUnavailable("overloaded", status_code=529) if number == 0 else None

    client = FaultyClient(FunctionClient(DialogueModel()), rule)
    solution = await MctsOptimizer().optimize(QUERY, client)
    assert len(solution.metadata.extras["root_children"]) == 1
    assert solution.metadata.iterations == 2  # the second simulation rates the one child again
    assert solution.answer in ROOT_REPLIES


async def test_a_401_on_one_reply_request_ends_the_run_with_the_providers_message() -> None:
    def rule(number: int, prompt: Prompt, settings: GenerationSettings) -> BaseException | None:
        return AuthenticationError("Incorrect API key provided: sk-****9876", status_code=401) if number == 1 else None

    client = FaultyClient(FunctionClient(DialogueModel()), rule)
    with anyio.fail_after(5), pytest.raises(AuthenticationError, match=r"Incorrect API key provided: sk-\*+9876"):
        await MctsOptimizer().optimize(QUERY, client)
