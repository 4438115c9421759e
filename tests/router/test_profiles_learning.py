"""The safety net: a 400 naming a setting the profile allowed is learned, the request sent once more without it.

Each test gives the client a profile that is wrong about the model (as for a model the catalogue
does not know yet) and checks the wire: one refused request, one retry that succeeds, and later
requests fitted by what was learned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from optillm_core import BadRequestError, GenerationSettings, ModelClient, ModelProfile, Prompt, collect_stream
from optillm_router import ModelClientRouter, ProviderRoutingConfig, ProviderSpec, model_profile
from optillm_router._http import HttpPool
from optillm_router._providers import create_provider_client
from optillm_router._providers._lessons import Refusal, learned_profile, refusal_in
from optillm_router.testing import FakeOpenAIServer

from .fakes_real import plays
from .fakes_wire import WireServer, json_answer

pytestmark = pytest.mark.anyio

PROMPT = Prompt.from_query("What is 6 x 7?")
OPENAI_FIELDS = frozenset({"max_tokens", "max_completion_tokens"})


@asynccontextmanager
async def client_for(provider: str, base_url: str, model: str, **wrong: Any) -> AsyncIterator[ModelClient]:
    profile = model_profile(provider, model, wrong)
    async with HttpPool() as http:
        yield create_provider_client(provider, model=model, api_key=None, base_url=base_url, http=http, profile=profile)


def statuses(server: FakeOpenAIServer) -> list[int]:
    return [r.status for r in server.chat_requests]


async def test_max_tokens_refused_for_max_completion_tokens_is_learned() -> None:
    async with (
        FakeOpenAIServer(real_model="o3-mini") as server,
        client_for("custom", server.base_url, "o3-mini", max_tokens_field="max_tokens") as client,
    ):
        with capture_logs() as logs:
            await client.complete(PROMPT, GenerationSettings(max_tokens=500))
        assert client.profile.max_tokens_field == "max_completion_tokens"
        await client.complete(PROMPT, GenerationSettings(max_tokens=600))
    assert statuses(server) == [400, 200, 200]
    bodies = [r.body for r in server.chat_requests]
    assert bodies[0]["max_tokens"] == 500
    assert bodies[1]["max_completion_tokens"] == 500 and "max_tokens" not in bodies[1]
    assert bodies[2]["max_completion_tokens"] == 600
    assert [e["learned"] for e in logs if e["event"].startswith("model refused a setting")] == [["max_tokens_field"]]


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_refused_temperature_is_dropped_and_remembered(streaming: bool) -> None:
    async with (
        FakeOpenAIServer(real_model="o3-mini") as server,
        client_for("openai", server.base_url, "o3-mini", temperature=True) as client,
    ):
        for _ in range(2):
            if streaming:
                async with client.stream(PROMPT, GenerationSettings(temperature=0.3)) as events:
                    completion = await collect_stream(events)
            else:
                completion = await client.complete(PROMPT, GenerationSettings(temperature=0.3))
            assert completion.text
    assert statuses(server) == [400, 200, 200]
    assert server.chat_requests[0].body["temperature"] == 0.3
    assert all("temperature" not in r.body for r in server.chat_requests[1:])
    assert client.profile.temperature is False


async def test_a_cap_named_in_the_400_is_learned() -> None:
    async with (
        FakeOpenAIServer(real_model="gpt-4o-mini") as server,
        client_for("openai", server.base_url, "gpt-4o-mini", max_output_tokens=None) as client,
    ):
        await client.complete(PROMPT, GenerationSettings(max_tokens=64_000))
        await client.complete(PROMPT, GenerationSettings(max_tokens=20_000))
    assert statuses(server) == [400, 200, 200]
    assert [r.body["max_completion_tokens"] for r in server.chat_requests] == [64_000, 16_384, 16_384]


async def test_a_refused_system_message_is_learned() -> None:
    async with (
        FakeOpenAIServer(real_model="o1-mini") as server,
        client_for("openai", server.base_url, "o1-mini", system_messages=True) as client,
    ):
        await client.complete(Prompt.from_query("Q", system="Be brief."))
    assert statuses(server) == [400, 200]
    assert server.chat_requests[1].body["messages"] == [{"role": "user", "content": "Be brief.\n\nQ"}]


async def test_only_one_retry_but_both_lessons_are_kept() -> None:
    wrong = {"max_tokens_field": "max_tokens", "temperature": True}
    async with (
        FakeOpenAIServer(real_model="o3-mini") as server,
        client_for("custom", server.base_url, "o3-mini", **wrong) as client,
    ):
        settings = GenerationSettings(max_tokens=500, temperature=0.3)
        with pytest.raises(BadRequestError, match=r"'temperature' does not support 0\.3"):
            await client.complete(PROMPT, settings)
        await client.complete(PROMPT, settings)
    assert statuses(server) == [400, 400, 200]
    assert "temperature" not in server.chat_requests[2].body
    assert server.chat_requests[2].body["max_completion_tokens"] == 500


async def test_a_400_that_names_no_setting_is_not_retried() -> None:
    too_long = {
        "error": {"message": "This model's maximum context length is 8192 tokens.", "type": "invalid_request_error"}
    }
    async with WireServer([json_answer(too_long, status=400)]) as server, client_for("vllm", server.url, "m") as client:
        with pytest.raises(BadRequestError, match="maximum context length"):
            await client.complete(PROMPT, GenerationSettings(temperature=0.3))
    assert len(server.requests) == 1
    assert client.profile == model_profile("vllm", "m")


async def test_a_lesson_about_a_setting_that_was_not_sent_is_not_retried() -> None:
    refused = {"error": {"message": "Unsupported parameter: 'seed' is not supported with this model."}}
    async with WireServer([json_answer(refused, status=400)]) as server, client_for("vllm", server.url, "m") as client:
        with pytest.raises(BadRequestError, match="seed"):
            await client.complete(PROMPT, GenerationSettings(temperature=0.3))
    assert len(server.requests) == 1
    assert client.profile.seed is True  # the 400 did not come from the seed: nothing learned


async def test_claude_sampling_refusals_are_learned() -> None:
    async with (
        WireServer(plays("claude-sonnet-4")) as sonnet,
        client_for("anthropic", sonnet.url, "claude-sonnet-4", sampling_exclusive=False) as client,
    ):
        await client.complete(PROMPT, GenerationSettings(temperature=0.5, top_p=0.9))
    assert [("top_p" in r.body, r.body["temperature"]) for r in sonnet.requests] == [(True, 0.5), (False, 0.5)]
    async with (
        WireServer(plays("claude-opus-4-7")) as opus,
        client_for("anthropic", opus.url, "claude-opus-4-7", temperature=True, top_p=True) as client,
    ):
        # Anthropic names one refused setting per 400: one retry learns temperature, the next 400 top_p.
        with pytest.raises(BadRequestError, match="`top_p` is deprecated"):
            await client.complete(PROMPT, GenerationSettings(temperature=0.5, top_p=0.9))
        await client.complete(PROMPT, GenerationSettings(temperature=0.5, top_p=0.9))
    assert [sorted({"temperature", "top_p"} & r.body.keys()) for r in opus.requests] == [
        ["temperature"],  # Claude 4.x: top_p left out beside a temperature
        ["top_p"],
        [],
    ]


async def test_the_router_profile_shows_what_its_clients_learned() -> None:
    async with FakeOpenAIServer(real_model="o3-mini") as server:
        spec = ProviderSpec("openai", "o3-mini", base_url=server.base_url, profile={"temperature": True})
        async with ModelClientRouter(ProviderRoutingConfig.single(spec).with_max_retries(0)) as router:
            before = router.profile
            await router.complete(PROMPT, GenerationSettings(temperature=0.3))
            after = router.profile
    assert (before.temperature, after.temperature) == (True, False)
    assert statuses(server) == [400, 200]


# -- reading the providers' messages ----------------------------------------------------------------------------

MESSAGES = [
    (
        "openai (o3-mini) answered HTTP 400: Unsupported parameter: 'max_tokens' is not supported with this model. "
        "Use 'max_completion_tokens' instead. (invalid_request_error)",
        Refusal("max_tokens", instead="max_completion_tokens"),
    ),
    (
        "Unsupported value: 'temperature' does not support 0.3 with this model. "
        "Only the default (1) value is supported.",
        Refusal("temperature"),
    ),
    ("Unsupported value: 'messages[0].role' does not support 'system' with this model.", Refusal("system")),
    ("Unsupported parameter: 'logprobs' is not supported with this model.", Refusal("logprobs")),
    (
        "`temperature` and `top_p` cannot both be specified for this model. Please use only one.",
        Refusal("sampling_together"),
    ),
    ("`temperature` is deprecated for this model.", Refusal("temperature")),
    (
        "max_tokens is too large: 64000. This model supports at most 16384 completion tokens, "
        "whereas you provided 64000.",
        Refusal("output_cap", cap=16384),
    ),
    (
        "max_tokens: 64000 > 32000, which is the maximum allowed number of output tokens for claude-opus-4-7",
        Refusal("output_cap", cap=32000),
    ),
    ("Invalid max_tokens value, the valid range of max_tokens is [1, 8192]", Refusal("output_cap", cap=8192)),
    (
        "Unable to submit request because it has a maxOutputTokens value of 100000 but the supported range is "
        "from 1 (inclusive) to 65537 (exclusive). Update the value and try again.",
        Refusal("output_cap", cap=65536),
    ),
    ("seed: Extra inputs are not permitted", Refusal("seed")),
    ("'logprobs' is not supported with this model", Refusal("logprobs")),
    ("This model's maximum context length is 8192 tokens.", None),
    ("Invalid API key", None),
]


@pytest.mark.parametrize(("message", "expected"), MESSAGES)
def test_the_refused_setting_is_read_from_the_providers_words(message: str, expected: Refusal | None) -> None:
    assert refusal_in(message) == expected


def test_a_lesson_only_ever_tightens_the_profile() -> None:
    profile = model_profile("openai", "gpt-4o-mini")  # knows its cap: 16384
    assert (
        learned_profile(profile, "max_tokens is too large: 9. This model supports at most 99999 tokens", OPENAI_FIELDS)
        is None
    )
    learned = learned_profile(profile, "`temperature` and `top_p` cannot both be specified", OPENAI_FIELDS)
    assert learned is not None and learned.sampling_exclusive
    assert learned_profile(learned, "`temperature` and `top_p` cannot both be specified", OPENAI_FIELDS) is None


PERMISSIVE = ModelProfile(max_output_tokens=100_000)


@given(st.text(max_size=300))
def test_any_message_gives_a_stricter_profile_or_none(message: str) -> None:
    learned = learned_profile(PERMISSIVE, message, OPENAI_FIELDS)
    if learned is None:
        return
    settings = GenerationSettings(temperature=0.5, top_p=0.9, seed=1, stop=("x",), max_tokens=50_000)
    fitted = learned.fit(settings).settings
    # Whatever it learned, nothing the permissive profile would leave out reappears.
    assert set(PERMISSIVE.unsupported(settings)) <= set(learned.unsupported(settings))
    assert (fitted.max_tokens or 0) <= 50_000


@given(st.sampled_from([m for m, _ in MESSAGES]), st.text(max_size=40), st.text(max_size=40))
def test_the_message_is_found_inside_any_wrapping(message: str, before: str, after: str) -> None:
    expected = refusal_in(message)
    if expected is None:
        return
    found = refusal_in(f"{before} {message} {after}")
    assert found is not None
    assert found.setting == expected.setting
