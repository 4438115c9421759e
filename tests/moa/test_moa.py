"""Mixture of Agents: call graph, settings on the wire, degraded candidates, failures and budgets."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import anyio
import pytest

from optillm_core import (
    AnswerDelta,
    AuthenticationError,
    BadRequestError,
    Budget,
    BudgetExhausted,
    ClientError,
    Completed,
    Completion,
    GenerationSettings,
    InvalidConfiguration,
    ModelClient,
    ModelProfile,
    NoSolutions,
    OptimizerEvent,
    OutputTextDelta,
    ParsingError,
    PhaseStarted,
    Prompt,
    ProviderUnavailable,
    RateLimitError,
    ResponseEvent,
    RunFailed,
    default_registry,
)
from optillm_core.testing import FaultyClient, FunctionClient, Reply, ScriptedClient, sequential_depth
from optillm_moa import CandidatesReady, CritiqueReady, MoaConfig, MoaOptimizer, SynthesisReady

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
SYSTEM = "You are a careful arithmetic tutor."


def happy_script() -> list[str | Reply]:
    return ["It is 19.", "12 + 7 = 19", "20", "Candidate 3 is wrong; 1 and 2 are right.", "12 + 7 = 19."]


async def test_native_n_makes_exactly_three_requests_with_each_phase_settings() -> None:
    client = ScriptedClient(happy_script(), native_n=True)
    solution = await MoaOptimizer().optimize(QUERY, client, system_prompt=SYSTEM)

    assert solution.answer == "12 + 7 = 19."
    assert [r.settings.n for r in client.requests] == [3, 1, 1]
    assert [r.settings.temperature for r in client.requests] == [1.0, 0.1, 0.1]
    assert [r.settings.max_tokens for r in client.requests] == [4096, 512, 8192]
    assert all(r.system_text == SYSTEM for r in client.requests)
    candidates_req, critique_req, synthesis_req = client.requests
    assert candidates_req.user_text == QUERY
    for text in ("It is 19.", "12 + 7 = 19", "20", QUERY):
        assert text in critique_req.user_text
        assert text in synthesis_req.user_text
    assert "Candidate 3 is wrong" in synthesis_req.user_text
    assert solution.metadata.llm_calls == 3
    assert solution.metadata.extras["candidates"] == ["It is 19.", "12 + 7 = 19", "20"]
    assert solution.metadata.extras["critique"] == "Candidate 3 is wrong; 1 and 2 are right."
    assert solution.metadata.extras["final_source"] == "synthesis"
    assert "Candidate 3:\n20" in solution.reasoning


async def test_without_native_n_the_candidates_fan_out_and_usage_is_exact() -> None:
    client = ScriptedClient(happy_script())
    solution = await MoaOptimizer().optimize(QUERY, client)

    assert [r.settings.n for r in client.requests] == [1, 1, 1, 1, 1]
    assert [r.settings.temperature for r in client.requests] == [1.0, 1.0, 1.0, 0.1, 0.1]
    assert solution.metadata.llm_calls == 5
    words = sum(len(m.content.split()) for r in client.requests for m in r.messages)
    assert solution.usage.input_tokens == words
    assert solution.usage.output_tokens == sum(len(str(t).split()) for t in happy_script())


@pytest.mark.parametrize("native_n", [True, False])
async def test_critical_path_is_three_round_trips(native_n: bool) -> None:
    replies = iter(happy_script())

    async def slow(prompt: Prompt, settings: GenerationSettings) -> str | Reply:
        await anyio.sleep(0.01)
        return next(replies)

    client = FunctionClient(slow, native_n=native_n)
    await MoaOptimizer().optimize(QUERY, client)
    assert sequential_depth(client.requests) == 3
    assert len(client.requests) == (3 if native_n else 5)


async def test_native_n_is_sent_in_chunks_of_the_models_max_n() -> None:
    client = FunctionClient(lambda prompt, settings: "19", native_n=True, profile=ModelProfile(max_n=2))
    seeded = GenerationSettings(seed=40)
    solution = await MoaOptimizer(MoaConfig(num_completions=5)).optimize(QUERY, client, settings=seeded)
    candidates = client.requests[:3]
    assert sorted(r.settings.n for r in candidates) == [1, 2, 2]
    # Each chunk starts at the seed offset of its first candidate, so no two chunks share a seed.
    assert sorted(r.settings.seed or 0 for r in candidates) == [40, 42, 44]
    assert len(solution.metadata.extras["candidates"]) == 5
    assert solution.metadata.llm_calls == 5


async def test_per_candidate_temperatures_send_one_request_each() -> None:
    client = ScriptedClient(happy_script(), native_n=True)
    config = MoaConfig(candidate_temperatures=(0.2, 0.7, 1.3))
    await MoaOptimizer(config).optimize(QUERY, client)

    first_three = client.requests[:3]
    assert sorted(r.settings.temperature or 0 for r in first_three) == [0.2, 0.7, 1.3]
    assert all(r.settings.n == 1 for r in first_three)
    assert len(client.requests) == 5


async def test_caller_max_tokens_caps_every_phase_and_never_raises_one() -> None:
    client = ScriptedClient(happy_script(), native_n=True)
    caller = GenerationSettings(max_tokens=300, top_p=0.9, n=4)
    await MoaOptimizer().optimize(QUERY, client, settings=caller)
    assert [r.settings.max_tokens for r in client.requests] == [300, 300, 300]
    assert [r.settings.top_p for r in client.requests] == [0.9, None, 0.9]
    assert [r.settings.n for r in client.requests] == [3, 1, 1]

    client = ScriptedClient(happy_script(), native_n=True)
    await MoaOptimizer().optimize(QUERY, client, settings=GenerationSettings(max_tokens=100_000))
    assert [r.settings.max_tokens for r in client.requests] == [4096, 512, 8192]


async def test_phase_settings_are_configurable() -> None:
    config = MoaConfig(
        num_completions=2,
        candidate_temperature=0.6,
        critique_temperature=0.0,
        synthesis_temperature=0.3,
        candidate_max_tokens=100,
        critique_max_tokens=200,
        synthesis_max_tokens=300,
    )
    client = ScriptedClient(["a", "b", "critique", "final"], native_n=True)
    await MoaOptimizer(config).optimize(QUERY, client)
    assert [(r.settings.n, r.settings.temperature, r.settings.max_tokens) for r in client.requests] == [
        (2, 0.6, 100),
        (1, 0.0, 200),
        (1, 0.3, 300),
    ]


async def test_empty_candidate_is_refilled_and_truncated_one_dropped() -> None:
    client = ScriptedClient(
        ["", Reply("half an ans", finish_reason="length"), "19", "refilled 19", "critique", "final 19"],
        native_n=True,
    )
    events: list[OptimizerEvent] = []
    solution = await MoaOptimizer().optimize(QUERY, client, events=events.append)

    assert [r.settings.n for r in client.requests] == [3, 1, 1, 1]
    assert client.requests[1].settings.temperature == 1.0
    assert client.requests[1].settings.max_tokens == 4096
    assert solution.metadata.extras["candidates"] == ["refilled 19", "19"]
    assert "half an ans" not in client.requests[2].user_text
    ready = next(e for e in events if isinstance(e, CandidatesReady))
    assert (ready.requested, ready.usable, ready.empty, ready.truncated, ready.refilled) == (3, 2, 0, 1, 1)


async def test_truncated_candidates_can_be_kept() -> None:
    client = ScriptedClient(
        [Reply("long", finish_reason="length"), "19", "19!", "critique", "final"],
        native_n=True,
    )
    solution = await MoaOptimizer(MoaConfig(truncated_candidates="keep")).optimize(QUERY, client)
    assert solution.metadata.extras["candidates"] == ["long", "19", "19!"]


async def test_provider_returning_fewer_choices_than_n_is_refilled() -> None:
    class OneChoice(ModelClient):
        """A server that ignores ``n`` and always answers with one choice."""

        def __init__(self) -> None:
            self.settings: list[GenerationSettings] = []
            self.replies = iter(["first", "second", "the critique", "final"])

        @property
        def supports_native_n(self) -> bool:
            return True

        async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
            completion = await self.request(prompt, settings)
            yield OutputTextDelta(delta=completion.text)
            yield Completed(finish_reasons=completion.finish_reasons)

        async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
            self.settings.append(settings)
            return Completion(texts=(next(self.replies),), finish_reasons=("stop",))

    client = OneChoice()
    solution = await MoaOptimizer().optimize(QUERY, client)
    assert [s.n for s in client.settings] == [3, 2, 1, 1]
    # The refill asked for two but this server returned one: two usable candidates remain.
    assert solution.metadata.extras["candidates"] == ["first", "second"]
    assert solution.answer == "final"
    assert solution.metadata.extras["critique"] == "the critique"


async def test_zero_usable_candidates_is_a_clear_error() -> None:
    client = ScriptedClient(["", "  ", Reply("cut", finish_reason="length")], native_n=True)
    events: list[OptimizerEvent] = []
    with pytest.raises(
        NoSolutions, match=r"0 usable sample\(s\) of 3.*2 came back empty, 1 were cut off.*truncated_candidates='keep'"
    ):
        await MoaOptimizer(MoaConfig(fallback=False)).optimize(QUERY, client, events=events.append)
    assert len(client.requests) == 1
    assert any(isinstance(e, RunFailed) and e.error_type == "NoSolutions" for e in events)


async def test_min_candidates_is_enforced_after_the_refill() -> None:
    client = ScriptedClient(["a", "", "", "", ""], native_n=True)
    with pytest.raises(NoSolutions, match=r"at least 2 needed.*lower min_candidates \(now 2\)"):
        await MoaOptimizer(MoaConfig(min_candidates=2)).optimize(QUERY, client)
    assert [r.settings.n for r in client.requests] == [3, 2]


async def test_truncated_critique_is_kept_and_flagged_to_the_synthesis() -> None:
    client = ScriptedClient(["a", "b", "c", Reply("Candidate 1 is", finish_reason="length"), "final"], native_n=True)
    events: list[OptimizerEvent] = []
    solution = await MoaOptimizer().optimize(QUERY, client, events=events.append)
    assert "Candidate 1 is\n(the review was cut off" in client.requests[2].user_text
    assert solution.answer == "final"
    assert solution.metadata.extras["critique_truncated"] is True
    assert any(isinstance(e, CritiqueReady) and e.truncated for e in events)


async def test_empty_critique_is_reported_as_missing() -> None:
    client = ScriptedClient(["a", "b", "c", "", "final"], native_n=True)
    await MoaOptimizer().optimize(QUERY, client)
    assert "no review is available" in client.requests[2].user_text


@pytest.mark.parametrize("synthesis", [Reply("The answer is", finish_reason="length"), Reply("   ")])
async def test_unusable_synthesis_falls_back_to_first_complete_candidate(synthesis: Reply) -> None:
    client = ScriptedClient(
        [Reply("cut", finish_reason="length"), "nineteen", "19", "critique", synthesis],
        native_n=True,
    )
    events: list[OptimizerEvent] = []
    solution = await MoaOptimizer(MoaConfig(truncated_candidates="keep")).optimize(QUERY, client, events=events.append)
    assert solution.answer == "nineteen"
    assert solution.metadata.extras["final_source"] == "candidate"
    assert any(isinstance(e, SynthesisReady) and e.source == "candidate" for e in events)
    assert "first complete candidate" in solution.reasoning
    assert solution.finish_reason == "stop"  # the candidate answering is whole


@pytest.mark.parametrize(
    ("synthesis", "answer"),
    [(Reply("The answer is", finish_reason="length"), "The answer is"), (Reply("   "), "cut")],
    ids=["cut-synthesis", "empty-synthesis"],
)
async def test_an_answer_cut_at_its_token_limit_says_so(synthesis: Reply, answer: str) -> None:
    # Every candidate was cut too, so the cut text is the best there is: the caller learns it is cut.
    cut = [Reply(text, finish_reason="length") for text in ("cut", "cut two", "cut three")]
    client = ScriptedClient([*cut, "critique", synthesis], native_n=True)
    solution = await MoaOptimizer(MoaConfig(truncated_candidates="keep")).optimize(QUERY, client)
    assert (solution.answer, solution.finish_reason) == (answer, "length")


async def test_a_whole_answer_finishes_with_stop() -> None:
    solution = await MoaOptimizer().optimize(QUERY, ScriptedClient(happy_script(), native_n=True))
    assert solution.finish_reason == "stop"


async def test_phases_are_announced_in_order() -> None:
    events: list[OptimizerEvent] = []
    await MoaOptimizer().optimize(QUERY, ScriptedClient(happy_script(), native_n=True), events=events.append)
    phases = [e.phase for e in events if isinstance(e, PhaseStarted)]
    assert phases == ["candidates", "critique", "synthesis"]
    kinds = [e.kind for e in events if isinstance(e, CandidatesReady | CritiqueReady | SynthesisReady)]
    assert kinds == ["CandidatesReady", "CritiqueReady", "SynthesisReady"]
    assert all(e.optimizer == "moa" for e in events)


def down() -> ProviderUnavailable:
    return ProviderUnavailable("upstream is down", status_code=503)


@pytest.mark.parametrize(
    ("failing_call", "native_n"),
    [(2, True), (4, False)],
    ids=["synthesis", "synthesis-fanned-out"],
)
async def test_a_failing_answer_request_ends_the_run_with_its_error(failing_call: int, native_n: bool) -> None:
    inner = ScriptedClient(happy_script(), native_n=native_n)
    client = FaultyClient(inner, {failing_call: down()})
    events: list[OptimizerEvent] = []
    with anyio.fail_after(5), pytest.raises(ProviderUnavailable, match="upstream is down"):
        await MoaOptimizer().optimize(QUERY, client, events=events.append)
    assert any(isinstance(e, RunFailed) for e in events)


async def test_a_failed_native_n_request_is_asked_again_as_a_whole() -> None:
    inner = ScriptedClient(happy_script(), native_n=True)
    client = FaultyClient(inner, {0: down()})
    events: list[OptimizerEvent] = []
    solution = await MoaOptimizer().optimize(QUERY, client, events=events.append)
    # The first n=3 request lost every candidate; the refill asks for all three again in one request.
    assert [r.settings.n for r in inner.requests] == [3, 1, 1]
    assert solution.metadata.extras["candidates"] == ["It is 19.", "12 + 7 = 19", "20"]
    ready = next(e for e in events if isinstance(e, CandidatesReady))
    assert (ready.usable, ready.refilled, ready.failed) == (3, 3, 0)


async def test_a_native_n_request_that_fails_again_ends_the_run_with_its_error() -> None:
    client = FaultyClient(ScriptedClient(happy_script(), native_n=True), {0: down(), 1: down()})
    with anyio.fail_after(5), pytest.raises(ProviderUnavailable, match="upstream is down"):
        await MoaOptimizer().optimize(QUERY, client)
    assert client.calls == 2


async def test_a_failed_candidate_is_requested_again_and_the_run_goes_on() -> None:
    inner = ScriptedClient(["It is 19.", "12 + 7 = 19", "refill: 19", "critique", "19."])
    client = FaultyClient(inner, lambda number, prompt, settings: down() if number == 2 else None)
    events: list[OptimizerEvent] = []
    solution = await MoaOptimizer().optimize(QUERY, client, events=events.append, settings=GenerationSettings(seed=5))

    assert solution.answer == "19."
    assert solution.metadata.extras["candidates"] == ["It is 19.", "12 + 7 = 19", "refill: 19"]
    # The refill of slot 2 gets seed offset 3 + 2: past the first round's offsets 0, 1 and 2.
    assert [r.settings.seed for r in inner.requests[:4]] == [5, 6, 5 + 3 + 2, None]
    ready = next(e for e in events if isinstance(e, CandidatesReady))
    assert (ready.usable, ready.refilled, ready.failed) == (3, 1, 0)


async def test_a_candidate_that_fails_again_is_dropped() -> None:
    inner = ScriptedClient(["It is 19.", "12 + 7 = 19", "critique", "19."])
    client = FaultyClient(inner, lambda number, prompt, settings: down() if number in (1, 3) else None)
    events: list[OptimizerEvent] = []
    solution = await MoaOptimizer().optimize(QUERY, client, events=events.append)
    assert solution.metadata.extras["candidates"] == ["It is 19.", "12 + 7 = 19"]
    assert solution.metadata.extras["failed_candidates"] == 1
    ready = next(e for e in events if isinstance(e, CandidatesReady))
    assert (ready.requested, ready.usable, ready.empty, ready.failed) == (3, 2, 1, 1)


async def test_when_every_candidate_fails_the_providers_error_is_raised() -> None:
    client = FaultyClient(ScriptedClient([]), lambda number, prompt, settings: down())
    with pytest.raises(ProviderUnavailable, match="upstream is down"):
        await MoaOptimizer(MoaConfig(fallback=False)).optimize(QUERY, client)
    assert client.calls == 3


async def test_a_candidate_refused_by_the_provider_ends_the_run() -> None:
    refused = BadRequestError("Invalid prompt: flagged by the content filter", status_code=400)
    client = FaultyClient(ScriptedClient(happy_script()), {1: refused})
    with pytest.raises(BadRequestError, match="content filter"):
        await MoaOptimizer().optimize(QUERY, client)


async def test_a_failed_critique_leaves_the_synthesis_without_a_review() -> None:
    inner = ScriptedClient(["a", "b", "c", "final"], native_n=True)
    client = FaultyClient(inner, {1: RateLimitError("rate limited", status_code=429)})
    events: list[OptimizerEvent] = []
    solution = await MoaOptimizer().optimize(QUERY, client, events=events.append)
    assert solution.answer == "final"
    assert "no review is available" in inner.requests[-1].user_text
    assert solution.metadata.extras["critique_failed"] is True
    assert "its request failed" in solution.reasoning
    assert any(isinstance(e, CritiqueReady) and e.failed and e.empty for e in events)


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("Incorrect API key provided: sk-proj-****1234", status_code=401),
        BadRequestError("This model's maximum context length is 8192 tokens", status_code=400),
    ],
    ids=["401", "400"],
)
async def test_a_critique_refused_by_the_provider_ends_the_run_with_its_message(error: ClientError) -> None:
    inner = ScriptedClient(["a", "b", "c", "final"], native_n=True)
    client = FaultyClient(inner, {1: error})
    events: list[OptimizerEvent] = []
    with pytest.raises(type(error), match=re.escape(str(error))):
        await MoaOptimizer().optimize(QUERY, client, events=events.append)
    assert len(inner.requests) == 1  # the candidates only: no synthesis without the review
    failed = next(e for e in events if isinstance(e, RunFailed))
    assert (failed.error_type, failed.error) == (type(error).__name__, str(error))


async def test_an_unreadable_critique_reply_is_absorbed_like_a_retryable_failure() -> None:
    inner = ScriptedClient(["a", "b", "c", "final"], native_n=True)
    client = FaultyClient(inner, {1: ParsingError("the provider's reply held no choices")})
    solution = await MoaOptimizer().optimize(QUERY, client)
    assert solution.answer == "final"
    assert solution.metadata.extras["critique_failed"] is True


async def test_budget_cut_after_candidates_returns_candidate_marked() -> None:
    client = ScriptedClient(happy_script(), native_n=True)
    solution = await MoaOptimizer().optimize(QUERY, client, budget=Budget(max_calls=2))
    assert solution.metadata.budget_exhausted is True
    assert solution.answer == "It is 19."
    assert "budget exhausted" in solution.metadata.extras["budget"]
    assert solution.metadata.llm_calls == 2


async def test_budget_cut_before_any_candidate_raises() -> None:
    client = ScriptedClient(happy_script())
    with pytest.raises(BudgetExhausted):
        await MoaOptimizer().optimize(QUERY, client, budget=Budget(max_calls=2))


def test_config_errors_name_the_field() -> None:
    with pytest.raises(InvalidConfiguration, match="one temperature per candidate"):
        MoaConfig(candidate_temperatures=(0.5,))
    with pytest.raises(InvalidConfiguration, match="min_candidates"):
        MoaConfig(num_completions=2, min_candidates=3)
    with pytest.raises(InvalidConfiguration, match="num_completions"):
        MoaConfig(num_completions=0)
    with pytest.raises(InvalidConfiguration, match="unknown field 'temperature'"):
        MoaOptimizer.from_options({"temperature": 0.3})
    with pytest.raises(InvalidConfiguration, match="truncated_candidates"):
        MoaConfig.from_mapping({"truncated_candidates": "pad"})


def test_registered_under_moa() -> None:
    optimizer = default_registry().create("moa", {"num_completions": "4"})
    assert isinstance(optimizer, MoaOptimizer)
    assert optimizer.config.num_completions == 4


async def test_the_synthesis_streams_as_answer_deltas() -> None:
    client = ScriptedClient(["19", "19.0", "20", "critique", "The answer is 19."], native_n=True)
    deltas: list[str] = []

    def collect(event: OptimizerEvent) -> None:
        if isinstance(event, AnswerDelta):
            deltas.append(event.delta)

    solution = await MoaOptimizer().optimize(QUERY, client, events=collect)
    assert len(deltas) > 1
    assert "".join(deltas) == solution.answer == "The answer is 19."
