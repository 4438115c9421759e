"""The router over the real OpenAI adapter and HTTP, against fake OpenAI servers on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from optillm_core import (
    AuthenticationError,
    GenerationSettings,
    OutputTextDelta,
    Prompt,
    ProtocolError,
    ProviderUnavailable,
    collect_stream,
)
from optillm_router import ModelClientRouter, ProviderRoutingConfig, ProviderSpec
from optillm_router.testing import FakeOpenAIServer, Fault

pytestmark = pytest.mark.anyio

PROMPT = Prompt.from_query("What is 6 times 7?")
SECRET = "sk-e2e-secret-0123456789abcdef"
FAST_RETRIES: dict[str, Any] = {"initial_retry_delay": 0.001, "max_retry_delay": 0.002}


def _spec(server: FakeOpenAIServer, **fields: Any) -> ProviderSpec:
    return ProviderSpec("openai", "fake-model", base_url=server.base_url, **fields)


def _config(*specs: ProviderSpec, **settings: Any) -> ProviderRoutingConfig:
    return ProviderRoutingConfig(primary=specs[0], alternatives=specs[1:], **{**FAST_RETRIES, **settings})


async def test_429_with_retry_after_and_500_are_retried() -> None:
    faults = {
        0: Fault(status=429, headers={"retry-after-ms": "5"}, body={"error": {"message": "slow down"}}),
        1: Fault(status=500),
    }
    async with FakeOpenAIServer(faults=faults) as server:
        async with ModelClientRouter(_config(_spec(server), max_retries=2)) as router:
            completion = await router.complete(PROMPT, GenerationSettings(max_tokens=50))
        assert "The answer is" in completion.text
        assert [r.status for r in server.chat_requests] == [429, 500, 200]
        assert router.usage.calls == 1
        assert router.usage.failures == 2
        assert router.usage.input_tokens == 5  # the fake server counts words


async def test_fallback_to_a_second_server() -> None:
    async with (
        FakeOpenAIServer(faults=lambda index, body: Fault(status=503)) as down,
        FakeOpenAIServer(reply=lambda body, choice: "from the backup") as backup,
    ):
        config = _config(_spec(down), _spec(backup, name="backup"), max_retries=1)
        async with ModelClientRouter(config) as router:
            assert (await router.complete(PROMPT)).text == "from the backup"
            stats = router.provider_stats()
        assert len(down.chat_requests) == 2
        assert len(backup.chat_requests) == 1
        assert stats["openai/fake-model"].usage.failures == 2
        assert stats["backup"].usage.calls == 1


async def test_all_servers_down_names_both() -> None:
    async with (
        FakeOpenAIServer(faults=lambda index, body: Fault(status=500)) as one,
        FakeOpenAIServer(faults=lambda index, body: Fault(status=529)) as two,
    ):
        config = _config(_spec(one, name="one"), _spec(two, name="two"), max_retries=0)
        async with ModelClientRouter(config) as router:
            with pytest.raises(
                ProviderUnavailable, match=r"all 2 providers failed after 2 attempts \(one: .*; two: .*HTTP 529"
            ):
                await router.complete(PROMPT)


async def test_stream_retried_before_first_token_over_sse() -> None:
    faults = {0: Fault(status=429, headers={"retry-after": "0"})}
    async with FakeOpenAIServer(faults=faults, reply=lambda body, choice: "one two three") as server:
        async with (
            ModelClientRouter(_config(_spec(server), max_retries=1)) as router,
            router.stream(PROMPT) as events,
        ):
            received = [event async for event in events]
        assert "".join(e.delta for e in received if isinstance(e, OutputTextDelta)) == "one two three"
        assert [r.status for r in server.chat_requests] == [429, 200]
        assert server.chat_requests[1].body["stream_options"] == {"include_usage": True}


async def test_truncated_stream_after_first_token_is_not_retried() -> None:
    faults = {0: Fault(kind="truncate")}
    async with FakeOpenAIServer(faults=faults, reply=lambda body, choice: "one two three") as server:
        async with ModelClientRouter(_config(_spec(server), max_retries=3)) as router:
            with pytest.raises(ProtocolError, match="stream ended before"):
                await _collect(router)
        assert len(server.chat_requests) == 1


async def _collect(router: ModelClientRouter) -> None:
    async with router.stream(PROMPT) as events:
        await collect_stream(events)


async def test_settings_and_native_n_reach_the_wire() -> None:
    async with FakeOpenAIServer() as server:
        async with ModelClientRouter(_config(_spec(server))) as router:
            settings = GenerationSettings(n=3, temperature=0.7, max_tokens=64, stop=("END",), seed=5, top_p=0.9)
            completion = await router.complete(PROMPT, settings)
        assert len(completion.texts) == 3
        (request,) = server.chat_requests
        body = request.body
        assert (body["n"], body["temperature"], body["seed"], body["top_p"], body["stop"]) == (3, 0.7, 5, 0.9, ["END"])
        assert 64 in (body.get("max_completion_tokens"), body.get("max_tokens"))


async def test_key_is_sent_but_never_shown() -> None:
    async with FakeOpenAIServer(api_key=SECRET) as server:
        async with ModelClientRouter(_config(_spec(server, api_key=SECRET))) as router:
            assert (await router.complete(PROMPT)).text
            assert SECRET not in repr(router)
        assert server.chat_requests[0].headers["Authorization"] == f"Bearer {SECRET}"
        wrong = _spec(server, api_key=SECRET[::-1])
        with capture_logs() as logs:
            async with ModelClientRouter(_config(wrong, max_retries=2)) as router:
                with pytest.raises(AuthenticationError) as info:
                    await router.complete(PROMPT)
        assert len(server.chat_requests) == 2  # 401 is not retried
        for text in (str(info.value), repr(logs)):
            assert SECRET not in text
            assert SECRET[::-1] not in text


async def test_concurrency_cap_against_a_real_server() -> None:
    async with FakeOpenAIServer(latency=0.01) as server:
        router = ModelClientRouter(_config(_spec(server, max_concurrency=4)))
        async with router, anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(router.complete, PROMPT)
        assert len(server.chat_requests) == 40
        assert server.max_in_flight <= 4


async def test_native_n_override_for_a_custom_server() -> None:
    async with FakeOpenAIServer(native_n=True) as server:
        plain = ProviderSpec("custom", "fake-model", base_url=server.base_url)
        async with ModelClientRouter(_config(plain)) as router:
            assert len((await router.complete(PROMPT, GenerationSettings(n=2))).texts) == 2
        assert [r.body.get("n") for r in server.chat_requests] == [None, None]  # fanned out
        native = ProviderSpec("custom", "fake-model", base_url=server.base_url, native_n=True)
        async with ModelClientRouter(_config(native)) as router:
            assert len((await router.complete(PROMPT, GenerationSettings(n=2))).texts) == 2
        assert server.chat_requests[-1].body["n"] == 2
