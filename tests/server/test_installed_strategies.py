"""The installed strategies served end to end: router over the fake upstream, default registry."""

from __future__ import annotations

import pytest
from openai import AsyncOpenAI

from optillm_core import default_registry
from optillm_router import ModelClientRouter, ProviderRoutingConfig, ProviderSpec
from optillm_router.testing import FakeOpenAIServer, count_words
from optillm_server import Upstream, create_app

from .support import serving

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("strategy", sorted(default_registry().names()))
async def test_each_installed_strategy_answers_with_the_upstream_usage(strategy: str) -> None:
    async with FakeOpenAIServer() as fake:
        config = ProviderRoutingConfig(ProviderSpec("vllm", "fake-model", base_url=fake.base_url), max_retries=0)
        async with ModelClientRouter(config) as router:
            app = create_app(client=router, model="fake-model", upstream=Upstream(fake.base_url))
            async with serving(app) as base_url:
                sdk = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
                try:
                    response = await sdk.chat.completions.create(
                        model=f"{strategy}-fake-model",
                        messages=[{"role": "user", "content": "What is 6 times 7?"}],
                        max_tokens=300,
                    )
                    models = await sdk.models.list()
                finally:
                    await sdk.close()
    assert response.choices[0].message.content
    assert f"{strategy}-fake-model" in [m.id for m in models.data]
    calls = fake.chat_requests
    assert calls
    # the request's max_tokens reaches the wire wherever the strategy does not set its own for a phase
    assert any(r.body.get("max_tokens") == 300 for r in calls)
    assert response.usage is not None
    expected_completion = 0
    for request in calls:
        n = int(request.body.get("n") or 1)
        for choice in range(n):
            text = fake.reply(request.body, choice)  # the fake's default reply: a plain string
            assert isinstance(text, str)
            expected_completion += count_words(text)
    assert response.usage.completion_tokens == expected_completion
