"""Sampling k answers: native n and its limit, fan-out with seeds, varied prompts where temperature is refused."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from optillm_core import (
    APPROACHES,
    AuthenticationError,
    CallRole,
    GenerationSettings,
    InvalidConfiguration,
    ModelProfile,
    NoSolutions,
    Optimizer,
    OptimizerConfig,
    Outcome,
    ProviderUnavailable,
    RateLimitError,
    RunContext,
    Samples,
    sample_answers,
    varied_query,
)
from optillm_core.testing import FaultyClient, FunctionClient, Reply, ScriptedClient, sequential_depth

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"


class SampleConfig(OptimizerConfig):
    k: int = 4


class Sampler(Optimizer[SampleConfig]):
    """Samples k answers at temperature 0.9 with a token limit of 300 and returns them as extras."""

    name = "sampler"
    description = "samples k answers"
    config_type = SampleConfig
    phases: ClassVar[Mapping[str, CallRole]] = {"samples": "answer"}

    async def run(self, ctx: RunContext[SampleConfig]) -> Outcome:
        samples = await sample_answers(ctx, ctx.config.k, temperature=0.9, max_tokens=300)
        return Outcome(answer=samples.texts[0], extras={"samples": samples})


async def sample(client: Any, k: int = 4, settings: GenerationSettings | None = None) -> Samples:
    solution = await Sampler(SampleConfig(k=k)).optimize(QUERY, client, settings=settings)
    samples = solution.metadata.extras["samples"]
    assert isinstance(samples, Samples)
    return samples


async def test_native_n_is_one_request_for_all_samples() -> None:
    client = ScriptedClient(["a", "b", "c", "d"], native_n=True)
    samples = await sample(client)
    assert [(r.settings.n, r.settings.temperature, r.settings.max_tokens) for r in client.requests] == [(4, 0.9, 300)]
    assert samples.texts == ("a", "b", "c", "d")
    assert [s.index for s in samples.samples] == [0, 1, 2, 3]
    assert (samples.requests, samples.failed, samples.empty, samples.varied) == (1, 0, 0, False)


async def test_native_n_is_split_at_the_models_limit_with_a_seed_per_request() -> None:
    client = ScriptedClient(list("abcde"), native_n=True, profile=ModelProfile(native_n=True, max_n=2))
    samples = await sample(client, k=5, settings=GenerationSettings(seed=100))
    assert sorted((r.settings.n, r.settings.seed) for r in client.requests) == [(1, 104), (2, 100), (2, 102)]
    assert client.refused == []
    assert sorted(s.index for s in samples.samples) == [0, 1, 2, 3, 4]


async def test_without_native_n_each_sample_is_its_own_request_with_its_own_seed() -> None:
    client = FunctionClient(lambda p, s: f"seed {s.seed}", latency=0.01)
    samples = await sample(client, settings=GenerationSettings(seed=7, temperature=0.2))
    assert sorted(r.settings.seed or 0 for r in client.requests) == [7, 8, 9, 10]
    assert {r.settings.temperature for r in client.requests} == {0.2}  # the caller's temperature for answers
    assert {r.settings.n for r in client.requests} == {1}
    assert sequential_depth(client.requests) == 1
    assert sorted(samples.texts) == ["seed 10", "seed 7", "seed 8", "seed 9"]


async def test_a_model_that_refuses_temperature_gets_varied_prompts_and_no_temperature() -> None:
    profile = ModelProfile(temperature=False, top_p=False, native_n=True)
    client = FunctionClient(lambda p, s: "x", native_n=True, profile=profile)
    samples = await sample(client, k=10, settings=GenerationSettings(temperature=0.5))
    assert client.refused == []
    assert len(client.requests) == 10
    assert all(r.settings.n == 1 and r.settings.temperature is None for r in client.requests)
    prompts = [r.user_text for r in client.requests]
    assert len(set(prompts)) == 10
    assert sorted(prompts) == sorted(varied_query(QUERY, i) for i in range(10))
    assert all(p.endswith(QUERY) for p in prompts)
    assert QUERY in prompts  # the first sample is the query as it is
    assert samples.varied
    assert {s.approach for s in samples.samples} == set(APPROACHES)


async def test_seeds_still_vary_where_the_model_takes_them_but_not_a_temperature() -> None:
    profile = ModelProfile(temperature=False, seed=True)
    client = FunctionClient(lambda p, s: "x", profile=profile)
    await sample(client, k=3, settings=GenerationSettings(seed=1))
    assert sorted(r.settings.seed or 0 for r in client.requests) == [1, 2, 3]


async def test_the_callers_response_format_goes_with_the_samples_and_stop_does_not() -> None:
    client = ScriptedClient(["{}", "{}"], native_n=True)
    caller = GenerationSettings(stop=("\n",), extra={"response_format": {"type": "json_object"}, "top_k": 5})
    await sample(client, k=2, settings=caller)
    (request,) = client.requests
    assert request.settings.extra == {"response_format": {"type": "json_object"}, "top_k": 5}
    assert request.settings.stop is None


@pytest.mark.parametrize("style", ["tags", "reasoning_content"])
async def test_thinking_stays_out_of_the_sample_text(style: str) -> None:
    profile = ModelProfile(thinking=style, native_n=True)
    replies = [Reply("It is 19.", thinking="12 + 7 is 19"), Reply("19", thinking="count up")]
    samples = await sample(ScriptedClient(replies, native_n=True, profile=profile), k=2)
    assert samples.texts == ("It is 19.", "19")
    assert [s.thinking for s in samples.samples] == ["12 + 7 is 19", "count up"]


async def test_failed_and_empty_samples_are_left_out_and_the_rest_go_on() -> None:
    inner = ScriptedClient(["a", "  ", "c"])
    client = FaultyClient(inner, {1: ProviderUnavailable("overloaded", status_code=529)})
    samples = await sample(client, k=4)
    assert len(samples.samples) == 2
    assert (samples.requested, samples.empty, samples.failed) == (4, 1, 1)
    assert [type(e) for e in samples.errors] == [ProviderUnavailable]


async def test_cut_off_samples_are_kept_and_marked() -> None:
    client = ScriptedClient([Reply("half", finish_reason="length"), "whole"], native_n=True)
    samples = await sample(client, k=2)
    assert [s.truncated for s in samples.samples] == [True, False]


async def test_when_every_sample_fails_the_first_provider_error_is_raised() -> None:
    client = FaultyClient(
        ScriptedClient([]),
        lambda n, p, s: (
            AuthenticationError("Incorrect API key provided.", status_code=401)
            if n == 0
            else RateLimitError("slow down", status_code=429)
        ),
    )
    with pytest.raises(AuthenticationError, match="Incorrect API key"):
        await sample(client, k=3)


async def test_when_every_sample_is_empty_there_is_no_solution() -> None:
    with pytest.raises(NoSolutions, match="all 3 samples came back empty"):
        await sample(ScriptedClient(["", " ", "\n"], native_n=True), k=3)


async def test_a_programming_error_is_not_taken_for_a_failed_sample() -> None:
    def broken(prompt: Any, settings: GenerationSettings) -> str:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await sample(FunctionClient(broken), k=2)


def test_varied_queries_are_distinct_and_end_with_the_query() -> None:
    queries = [varied_query(QUERY, i) for i in range(3 * len(APPROACHES))]
    assert len(set(queries)) == len(queries)
    assert queries[0] == QUERY
    assert all(q.endswith("\n\n" + QUERY) for q in queries[1:])


async def test_zero_samples_is_a_configuration_error() -> None:
    with pytest.raises(InvalidConfiguration, match="k >= 1"):
        await sample(ScriptedClient([]), k=0)
