"""The one sampler: native n and its limit, fan-out with seeds, varied prompts where temperature cannot vary,
per-sample temperatures, refills, truncation, the absorb policy, and samples that answer with tools."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from optillm_core import (
    AuthenticationError,
    CallRole,
    Conversation,
    GenerationSettings,
    InvalidConfiguration,
    Message,
    ModelProfile,
    NoSolutions,
    Optimizer,
    OptimizerConfig,
    Outcome,
    ProviderUnavailable,
    RateLimitError,
    RunContext,
    ToolCall,
    ToolDefinition,
)
from optillm_core.testing import (
    CLAUDE_OPUS,
    O3_MINI,
    FaultyClient,
    FunctionClient,
    RecordedRequest,
    Reply,
    ScriptedClient,
    sequential_depth,
)
from optillm_core.toolkit import APPROACHES, Samples, approach, sample, sample_requests, varied_query

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"


class SampleConfig(OptimizerConfig):
    k: int = 4
    temperatures: tuple[float, ...] | None = None
    truncated: str = "keep"
    refill: bool = False
    minimum: int = 1
    returned: bool = True


class Sampler(Optimizer[SampleConfig]):
    """Samples k answers at temperature 0.9 with a token limit of 300 and returns them as extras."""

    name = "sampler"
    description = "samples k answers"
    config_type = SampleConfig
    phases: ClassVar[Mapping[str, CallRole]] = {"samples": "returned"}
    answers_with_tools = True

    async def run(self, ctx: RunContext[SampleConfig]) -> Outcome:
        config = ctx.config
        samples = await sample(
            ctx,
            config.k,
            temperature=config.temperatures or 0.9,
            max_tokens=300,
            truncated="drop" if config.truncated == "drop" else "keep",
            refill=config.refill,
            minimum=config.minimum,
            returned=config.returned,
        )
        first = samples.samples[0]
        return Outcome(answer=first.text, tool_calls=first.tool_calls, extras={"samples": samples})


async def sampled(
    client: Any,
    k: int = 4,
    settings: GenerationSettings | None = None,
    query: str | Conversation = QUERY,
    **config: Any,
) -> Samples:
    solution = await Sampler(SampleConfig(k=k, **config)).optimize(query, client, settings=settings)
    samples = solution.metadata.extras["samples"]
    assert isinstance(samples, Samples)
    return samples


async def test_native_n_is_one_request_for_all_samples() -> None:
    client = ScriptedClient(["a", "b", "c", "d"], native_n=True)
    samples = await sampled(client)
    assert [(r.settings.n, r.settings.temperature, r.settings.max_tokens) for r in client.requests] == [(4, 0.9, 300)]
    assert samples.texts == ("a", "b", "c", "d")
    assert [s.index for s in samples.samples] == [0, 1, 2, 3]
    assert (samples.requests, samples.failed, samples.empty, samples.varied) == (1, 0, 0, False)


async def test_native_n_is_split_at_the_models_limit_with_a_seed_per_request() -> None:
    client = ScriptedClient(list("abcde"), native_n=True, profile=ModelProfile(native_n=True, max_n=2))
    samples = await sampled(client, k=5, settings=GenerationSettings(seed=100))
    assert sorted((r.settings.n, r.settings.seed) for r in client.requests) == [(1, 104), (2, 100), (2, 102)]
    assert client.refused == []
    assert sorted(s.index for s in samples.samples) == [0, 1, 2, 3, 4]


async def test_without_native_n_each_sample_is_its_own_request_with_its_own_seed() -> None:
    client = FunctionClient(lambda p, s: f"seed {s.seed}", latency=0.01)
    samples = await sampled(client, settings=GenerationSettings(seed=7, temperature=0.2))
    assert sorted(r.settings.seed or 0 for r in client.requests) == [7, 8, 9, 10]
    assert {r.settings.temperature for r in client.requests} == {0.2}  # the caller's temperature for answers
    assert {r.settings.n for r in client.requests} == {1}
    assert sequential_depth(client.requests) == 1
    assert sorted(samples.texts) == ["seed 10", "seed 7", "seed 8", "seed 9"]


async def test_a_model_that_refuses_temperature_gets_varied_prompts_and_no_temperature() -> None:
    profile = ModelProfile(temperature=False, top_p=False, native_n=True)
    client = FunctionClient(lambda p, s: "x", native_n=True, profile=profile)
    samples = await sampled(client, k=10, settings=GenerationSettings(temperature=0.5))
    assert client.refused == []
    assert len(client.requests) == 10
    assert all(r.settings.n == 1 and r.settings.temperature is None for r in client.requests)
    prompts = [r.user_text for r in client.requests]
    assert len(set(prompts)) == 10
    assert sorted(prompts) == sorted(varied_query(QUERY, i) for i in range(10))
    assert all(p.endswith(QUERY) for p in prompts)
    assert QUERY in prompts  # the first sample is the query as it is
    assert samples.varied
    assert [s.approach for s in samples.samples] == [approach(i) for i in range(10)]
    assert {approach(i) for i in range(len(APPROACHES))} == set(APPROACHES)


async def test_seeds_still_vary_where_the_model_takes_them_but_not_a_temperature() -> None:
    profile = ModelProfile(temperature=False, seed=True)
    client = FunctionClient(lambda p, s: "x", profile=profile)
    await sampled(client, k=3, settings=GenerationSettings(seed=1))
    assert sorted(r.settings.seed or 0 for r in client.requests) == [1, 2, 3]


async def test_the_callers_response_format_goes_with_the_samples_and_stop_does_not() -> None:
    client = ScriptedClient(["{}", "{}"], native_n=True)
    caller = GenerationSettings(stop=("\n",), extra={"response_format": {"type": "json_object"}, "top_k": 5})
    await sampled(client, k=2, settings=caller)
    (request,) = client.requests
    assert request.settings.extra == {"response_format": {"type": "json_object"}, "top_k": 5}
    assert request.settings.stop is None


@pytest.mark.parametrize("style", ["tags", "reasoning_content"])
async def test_thinking_stays_out_of_the_sample_text(style: str) -> None:
    profile = ModelProfile(thinking=style, native_n=True)
    replies = [Reply("It is 19.", thinking="12 + 7 is 19"), Reply("19", thinking="count up")]
    samples = await sampled(ScriptedClient(replies, native_n=True, profile=profile), k=2)
    assert samples.texts == ("It is 19.", "19")
    assert [s.thinking for s in samples.samples] == ["12 + 7 is 19", "count up"]


async def test_failed_and_empty_samples_are_left_out_and_the_rest_go_on() -> None:
    inner = ScriptedClient(["a", "  ", "c"])
    client = FaultyClient(inner, {1: ProviderUnavailable("overloaded", status_code=529)})
    samples = await sampled(client, k=4)
    assert len(samples.samples) == 2
    assert (samples.requested, samples.empty, samples.failed) == (4, 1, 1)
    assert [type(e) for e in samples.errors] == [ProviderUnavailable]


async def test_cut_off_samples_are_kept_and_marked() -> None:
    client = ScriptedClient([Reply("half", finish_reason="length"), "whole"], native_n=True)
    samples = await sampled(client, k=2)
    assert [s.truncated for s in samples.samples] == [True, False]


async def test_when_every_sample_fails_the_first_provider_error_is_raised() -> None:
    client = FaultyClient(ScriptedClient([]), lambda n, p, s: RateLimitError(f"slow down {n}", status_code=429))
    with pytest.raises(RateLimitError, match="slow down 0"):
        await sampled(client, k=3)


async def test_an_authentication_error_ends_the_run_though_other_samples_succeed() -> None:
    client = FaultyClient(
        ScriptedClient(["a", "b", "c"]),
        {1: AuthenticationError("Incorrect API key provided: sk-...abcd.", status_code=401)},
    )
    with pytest.raises(AuthenticationError, match="Incorrect API key provided"):
        await sampled(client, k=3)


async def test_when_every_sample_is_empty_there_is_no_solution() -> None:
    with pytest.raises(NoSolutions, match=r"only 0 usable sample\(s\) of 3 .*3 came back empty"):
        await sampled(ScriptedClient(["", " ", "\n"], native_n=True), k=3)


async def test_a_programming_error_is_not_taken_for_a_failed_sample() -> None:
    def broken(prompt: Any, settings: GenerationSettings) -> str:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await sampled(FunctionClient(broken), k=2)


def test_varied_queries_are_distinct_and_end_with_the_query() -> None:
    queries = [varied_query(QUERY, i) for i in range(3 * len(APPROACHES))]
    assert len(set(queries)) == len(queries)
    assert queries[0] == QUERY
    assert all(q.endswith("\n\n" + QUERY) for q in queries[1:])


async def test_zero_samples_is_a_configuration_error() -> None:
    with pytest.raises(InvalidConfiguration, match="k >= 1"):
        await sampled(ScriptedClient([]), k=0)


async def test_a_sample_at_temperature_zero_gets_a_varied_prompt() -> None:
    client = FunctionClient(lambda p, s: "x")
    samples = await sampled(client, k=3, temperatures=(0.0, 0.0, 0.7))
    by_temperature = sorted((r.settings.temperature or 0.0, r.user_text) for r in client.requests)
    assert by_temperature == [(0.0, QUERY), (0.0, varied_query(QUERY, 1)), (0.7, QUERY)]
    assert samples.varied
    assert [s.approach for s in samples.samples] == [None, APPROACHES[1], None]


async def test_per_sample_temperatures_share_native_n_requests_only_when_equal() -> None:
    client = ScriptedClient(list("abcd"), native_n=True)
    await sampled(client, k=4, temperatures=(0.5, 1.0, 0.5, 1.0))
    assert sorted((r.settings.temperature, r.settings.n) for r in client.requests) == [(0.5, 2), (1.0, 2)]


async def test_per_sample_temperatures_must_match_the_sample_count() -> None:
    with pytest.raises(InvalidConfiguration, match="one temperature per reply"):
        await sampled(ScriptedClient([]), k=3, temperatures=(0.5, 1.0))


async def test_refill_asks_once_more_for_failed_and_empty_samples_with_new_seeds() -> None:
    inner = FunctionClient(lambda p, s: "" if s.seed in (1, 2) else f"seed {s.seed}")
    client = FaultyClient(inner, {0: ProviderUnavailable("overloaded", status_code=529)})
    samples = await sampled(client, k=3, refill=True, settings=GenerationSettings(seed=0))
    assert sorted(samples.texts) == ["seed 3", "seed 4", "seed 5"]
    assert (samples.refilled, samples.requests) == (3, 6)


async def test_without_refill_nothing_is_asked_again() -> None:
    client = ScriptedClient(["a", "", "c"])
    samples = await sampled(client, k=3)
    assert (len(client.requests), samples.refilled, samples.empty) == (3, 0, 1)


async def test_truncated_samples_are_dropped_when_asked_and_counted() -> None:
    client = ScriptedClient([Reply("half", finish_reason="length"), "whole"], native_n=True)
    samples = await sampled(client, k=2, truncated="drop")
    assert samples.texts == ("whole",)
    assert (samples.dropped_truncated, samples.failed) == (1, 0)


async def test_fewer_usable_samples_than_the_minimum_end_the_run_saying_why() -> None:
    client = ScriptedClient([Reply("half", finish_reason="length"), "whole", ""], native_n=True)
    with pytest.raises(NoSolutions, match=r"only 1 usable sample.*at least 2 needed.*1 came back empty.*cut off"):
        await sampled(client, k=3, truncated="drop", minimum=2)


def test_sample_requests_counts_the_first_round() -> None:
    optimizer = Sampler(SampleConfig(k=5))
    chunked = optimizer.planning_context(
        ScriptedClient([], native_n=True, profile=ModelProfile(native_n=True, max_n=2))
    )
    assert sample_requests(chunked, 5, temperature=0.9) == 3
    varied = optimizer.planning_context(ScriptedClient([], native_n=True, profile=O3_MINI))
    assert sample_requests(varied, 5, temperature=0.9) == 5


# -- samples that may answer with the caller's tools -------------------------------------------------

WEATHER = ToolDefinition(name="get_weather", parameters={"type": "object", "properties": {"city": {"type": "string"}}})
ASKED = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
AGENT_TURN = Conversation(
    system=("You are a weather assistant.",),
    turns=(
        Message.user("Should I take an umbrella in Paris?"),
        Message.assistant("", tool_calls=(ASKED,)),
        Message.tool_result("light rain, 14°C", tool_call_id="call_1"),
    ),
)


def tool_turns(request: RecordedRequest) -> list[str]:
    return [m.role for m in request.prompt.messages]


async def test_returned_samples_get_the_tools_and_the_conversation_as_real_tool_turns() -> None:
    def reply(prompt: Any, settings: GenerationSettings) -> Reply:
        return Reply("", tool_calls=(ToolCall(id="call_2", name="get_weather", arguments='{"city":"Lyon"}'),))

    client = FunctionClient(reply, profile=CLAUDE_OPUS)  # no temperature: each sample varies its prompt
    samples = await sampled(client, k=2, query=AGENT_TURN, settings=GenerationSettings(tools=(WEATHER,)))
    assert all(r.settings.tools == (WEATHER,) for r in client.requests)
    assert [tool_turns(r) for r in client.requests] == [["user", "assistant", "tool"]] * 2
    varied = next(r for r in client.requests if r.prompt.messages[0].content != "Should I take an umbrella in Paris?")
    assert varied.prompt.messages[0].content == varied_query("Should I take an umbrella in Paris?", 1)
    assert all(r.prompt.system == "You are a weather assistant." for r in client.requests)
    assert [s.tool_calls[0].name for s in samples.samples] == ["get_weather", "get_weather"]
    assert all(s.text == "" and not s.empty for s in samples.samples)
    assert samples.samples[0].key == 'tool call: get_weather({"city":"Lyon"})'


async def test_samples_not_returned_get_no_tools_and_the_conversation_as_one_question() -> None:
    client = FunctionClient(lambda p, s: "Yes, take one.")
    await sampled(client, k=2, query=AGENT_TURN, returned=False, settings=GenerationSettings(tools=(WEATHER,)))
    assert all(r.settings.tools is None for r in client.requests)
    assert all(tool_turns(r) == ["user"] for r in client.requests)
    assert all("light rain, 14°C" in r.user_text and "<tool_result" in r.user_text for r in client.requests)
