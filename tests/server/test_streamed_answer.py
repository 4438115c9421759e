"""A streamed answer is the answer: when a strategy ends up answering with other text than it streamed,
the client gets an error event, never that text with ``finish_reason: stop``.

MoA and MARS run through the router against ``FakeProviderServer``, whose faults strike the
final stream the way a provider's do.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest

from optillm_core import ModelClient, default_registry
from optillm_core.testing import JumpClock
from optillm_mars import _prompts as mars_prompts
from optillm_router import ModelClientRouter, ProviderRoutingConfig
from optillm_router.testing import FakeProviderServer, FakeReply, FaultKind, FaultPlan
from optillm_server import create_app

from .support import serving

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not {"moa", "mars"} <= set(default_registry().names()), reason="needs optillm-moa and optillm-mars"
    ),
]

LIMIT = 30
QUESTION = "What is 12 + 7?"
SYNTHESIS = "Putting the solutions together: 12 plus 7 makes 19, so the answer is \\boxed{19}."


@asynccontextmanager
async def proxy_over(fake: FakeProviderServer) -> AsyncIterator[str]:
    """The proxy on the default registry, its strategies calling ``fake`` through the router (one retry)."""
    config = ProviderRoutingConfig(fake.spec(), max_retries=1).with_cooldown(failures=100, seconds=1.0)
    router: ModelClient = ModelClientRouter(config, clock=JumpClock())
    app = create_app(client=router, model="fake-model", registry=default_registry())
    async with router, serving(app) as url:
        yield url


async def ask(url: str, model: str, *, stream: bool) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": QUESTION}], "stream": stream, "max_tokens": 200}
    with anyio.fail_after(LIMIT):
        async with httpx.AsyncClient(timeout=LIMIT) as http:
            return await http.post(f"{url}/chat/completions", json=body)


def data_events(response: httpx.Response) -> list[Any]:
    payloads = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


def streamed(events: list[Any]) -> str:
    return "".join(
        (e["choices"][0]["delta"].get("content") or "") for e in events if isinstance(e, dict) and e.get("choices")
    )


def finish_reasons(events: list[Any]) -> list[str]:
    return [
        e["choices"][0]["finish_reason"]
        for e in events
        if isinstance(e, dict) and e.get("choices") and e["choices"][0]["finish_reason"]
    ]


def stream_error(response: httpx.Response) -> tuple[dict[str, Any], str]:
    """The error event that ends a stream, and the text streamed before it; no finish reason was sent."""
    assert response.status_code == 200
    events = data_events(response)
    assert events[-1] == "[DONE]"
    assert set(events[-2]) == {"error"}
    assert finish_reasons(events) == []
    error: dict[str, Any] = events[-2]["error"]
    return error, streamed(events)


def messages_of(chat: dict[str, Any]) -> tuple[str, str]:
    """The system text and the last user text of a request in OpenAI's shape."""
    system = "\n".join(str(m.get("content", "")) for m in chat["messages"] if m.get("role") == "system")
    user = next(str(m.get("content", "")) for m in reversed(chat["messages"]) if m.get("role") == "user")
    return system, user


# -- MoA: the synthesis is cut off at its token limit, so MoA answers with a candidate -----------------


def moa_model(chat: dict[str, Any], choice: int) -> str | FakeReply:
    _, user = messages_of(chat)
    if "<review>" in user:
        return FakeReply("Taking the best of both candidates, the sum of twelve and seven", finish_reason="length")
    if "Review every candidate" in user:
        return "Candidate 1 is right; candidate 2 is right too."
    return "Adding 12 and 7 gives 19. The answer is 19."


async def test_moa_whose_synthesis_is_cut_off_ends_its_stream_with_an_error_event() -> None:
    async with FakeProviderServer(reply=moa_model) as fake, proxy_over(fake) as url:
        streamed_response = await ask(url, "moa-fake-model", stream=True)
        plain = await ask(url, "moa-fake-model", stream=False)
    error, text = stream_error(streamed_response)
    assert text == "Taking the best of both candidates, the sum of twelve and seven"  # the cut synthesis went out
    assert error["code"] == "upstream_stream_abandoned"
    assert "not the text it streamed" in error["message"]
    # Without streaming nothing was sent early: the answer is the candidate MoA fell back to.
    assert plain.status_code == 200, plain.text
    assert plain.json()["choices"][0]["message"]["content"] == "Adding 12 and 7 gives 19. The answer is 19."


# -- MoA: everything is cut off, so the cut synthesis is the answer, and the client is told so -------------

CUT_SYNTHESIS = "Taking the best of both candidates, the sum of twelve and seven"


def cut_moa_model(chat: dict[str, Any], choice: int) -> str | FakeReply:
    _, user = messages_of(chat)
    if "<review>" in user:
        return FakeReply(CUT_SYNTHESIS, finish_reason="length")
    if "Review every candidate" in user:
        return "Candidate 1 is right; candidate 2 is right too."
    return FakeReply("Adding 12 and 7 gives", finish_reason="length")


async def test_an_answer_cut_at_its_token_limit_finishes_with_length_on_both_endpoints() -> None:
    keep = {"optillm_config": {"truncated_candidates": "keep"}}
    chat = {"model": "moa-fake-model", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 200, **keep}
    async with FakeProviderServer(reply=cut_moa_model) as fake, proxy_over(fake) as url:
        with anyio.fail_after(LIMIT):
            async with httpx.AsyncClient(timeout=LIMIT) as http:
                plain = await http.post(f"{url}/chat/completions", json=chat)
                live = await http.post(f"{url}/chat/completions", json={**chat, "stream": True})
                message = await http.post(f"{url}/messages", json=chat)
                message_live = await http.post(f"{url}/messages", json={**chat, "stream": True})
    assert plain.status_code == 200, plain.text
    choice = plain.json()["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == (CUT_SYNTHESIS, "length")
    events = data_events(live)
    assert (streamed(events), finish_reasons(events), events[-1]) == (CUT_SYNTHESIS, ["length"], "[DONE]")
    assert message.status_code == 200, message.text
    assert (message.json()["content"][0]["text"], message.json()["stop_reason"]) == (CUT_SYNTHESIS, "max_tokens")
    deltas = [json.loads(line[6:]) for line in message_live.text.splitlines() if line.startswith("data: ")]
    assert [d["delta"]["stop_reason"] for d in deltas if d["type"] == "message_delta"] == ["max_tokens"]


# -- MARS: the synthesis stream breaks mid-answer -----------------------------------------------------

CORRECT_ANSWERS = {"1": "19", "2": "18"}  # the agents disagree, so no majority spares the synthesis


def mars_model(retry: str) -> Any:
    """Two agents that disagree, verifiers that cannot decide, and a synthesis; ``retry`` says how the
    synthesis answers when it is asked again without streaming: ``same``, or ``different``."""

    def answer(chat: dict[str, Any], choice: int) -> str:
        system, user = messages_of(chat)
        if mars_prompts.VERIFIER_SYSTEM in system:
            return "I cannot tell from this."  # no verdict and nothing to act on: verified again, never passed
        if mars_prompts.SYNTHESIZER_SYSTEM in system:
            if retry == "different" and not chat.get("stream"):
                return "On reflection the answer is \\boxed{19}, since 12 + 7 = 19."
            return SYNTHESIS
        agent = re.search(r"You are agent (\d+) of", user)
        assert agent is not None, user[:80]
        return f"Adding the numbers gives \\boxed{{{CORRECT_ANSWERS[agent.group(1)]}}}."

    return answer


@dataclass(frozen=True)
class SynthesisFaults(FaultPlan):
    """The synthesis stream is cut mid-answer; its repeat as a plain request gets ``repeat`` (None: answered)."""

    repeat: FaultKind | None = None

    def decide(self, number: int, key: str, occurrence: int) -> FaultKind | None:
        body = json.loads(key)
        system = " ".join(str(m.get("content", "")) for m in body["messages"] if m.get("role") == "system")
        if mars_prompts.SYNTHESIZER_SYSTEM not in system:
            return None
        return "cut" if body.get("stream") else self.repeat


async def test_mars_whose_synthesis_stream_breaks_and_is_repeated_alike_streams_the_whole_answer() -> None:
    async with FakeProviderServer(reply=mars_model("same"), faults=SynthesisFaults()) as fake, proxy_over(fake) as url:
        response = await ask(url, "mars-fake-model", stream=True)
    events = data_events(response)
    assert events[-1] == "[DONE]"
    assert not any(isinstance(e, dict) and "error" in e for e in events)
    assert streamed(events) == SYNTHESIS
    assert finish_reasons(events) == ["stop"]
    assert fake.faults_injected["cut"] == 1


@pytest.mark.parametrize(
    ("retry", "repeat"),
    [pytest.param("same", "500", id="the-repeat-fails"), pytest.param("different", None, id="the-repeat-differs")],
)
async def test_mars_whose_synthesis_stream_breaks_and_answers_otherwise_ends_with_an_error_event(
    retry: str, repeat: FaultKind | None
) -> None:
    faults = SynthesisFaults(repeat=repeat)
    async with FakeProviderServer(reply=mars_model(retry), faults=faults) as fake, proxy_over(fake) as url:
        response = await ask(url, "mars-fake-model", stream=True)
        plain = await ask(url, "mars-fake-model", stream=False)
    error, text = stream_error(response)
    assert text and SYNTHESIS.startswith(text) and text != SYNTHESIS  # half the synthesis went out, then the cut
    assert error["code"] == "upstream_stream_abandoned"
    # Without streaming the same run answers: with the new synthesis, or the best solution when it failed.
    assert plain.status_code == 200, plain.text
    content = plain.json()["choices"][0]["message"]["content"]
    assert content != SYNTHESIS
