"""The router across wire formats: OpenAI to Anthropic fallback, and cancellation closing the connection."""

from __future__ import annotations

import anyio
import pytest
from structlog.testing import capture_logs

from optillm_core import OutputTextDelta, Prompt
from optillm_router import ModelClientRouter, ProviderRoutingConfig, ProviderSpec
from optillm_router.testing import FakeOpenAIServer, Fault

from .fakes_wire import Received, Scripted, WireServer, json_answer, sse_answer, sse_events

pytestmark = pytest.mark.anyio

PROMPT = Prompt.from_query("What is 6 times 7?")
SECRET = "sk-ant-mixed-secret-0123456789"

CLAUDE_ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "content": [{"type": "text", "text": "42, says claude"}],
    "model": "claude-test",
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 4},
}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


async def test_openai_down_falls_back_to_anthropic_through_a_529() -> None:
    answers = [json_answer(OVERLOADED, status=529, headers={"retry-after": "0"}), json_answer(CLAUDE_ANSWER)]
    async with (
        FakeOpenAIServer(faults=lambda index, body: Fault(status=503)) as openai,
        WireServer(answers) as anthropic,
    ):
        config = ProviderRoutingConfig(
            primary=ProviderSpec("openai", "fake-model", base_url=openai.base_url),
            alternatives=(
                ProviderSpec(
                    "anthropic",
                    "claude-test",
                    base_url=anthropic.url,
                    api_key=SECRET,
                    input_price_per_million=3.0,
                    output_price_per_million=15.0,
                ),
            ),
            max_retries=1,
            initial_retry_delay=0.001,
            max_retry_delay=0.002,
        )
        with capture_logs() as logs:
            async with ModelClientRouter(config) as router:
                completion = await router.complete(PROMPT)
                stats = router.provider_stats()
        assert completion.text == "42, says claude"
        assert len(openai.chat_requests) == 2
        assert [r.path for r in anthropic.requests] == ["/v1/messages"] * 2
        assert anthropic.last.headers["x-api-key"] == SECRET
        claude = stats["anthropic/claude-test"]
        assert (claude.usage.calls, claude.usage.failures) == (1, 1)
        assert claude.usage.cost == pytest.approx((12 * 3.0 + 4 * 15.0) / 1e6)
        failed = [e for e in logs if e["event"] == "model call failed"]
        assert [(e["provider"], e["status_code"]) for e in failed] == [("openai", 503)] * 2 + [("anthropic", 529)]
        assert SECRET not in repr(logs)


async def test_leaving_a_stream_early_closes_its_connection() -> None:
    first = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}, "finish_reason": None}],
    }

    def script(received: Received) -> Scripted:
        return sse_answer(sse_events(first), hold=True)

    async with WireServer(script) as server:
        spec = ProviderSpec("vllm", "m", base_url=server.url + "/v1", max_concurrency=1)
        async with ModelClientRouter(ProviderRoutingConfig.single(spec)) as router:
            async with router.stream(PROMPT) as events:
                event = await anext(events)
                assert isinstance(event, OutputTextDelta)
                assert event.delta == "Hello"
            with anyio.fail_after(10):
                await server.disconnected.wait()
            assert router.provider_stats()["vllm/m"].in_flight == 0
