"""Limits that protect the upstream bill: body size, n, strategies, messages, config ceilings, the request budget."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send

from optillm_core import (
    GenerationSettings,
    ModelClient,
    Optimizer,
    OptimizerConfig,
    OptimizerRegistry,
    Outcome,
    OutputTextDelta,
    Prompt,
    ResponseEvent,
    RunContext,
    default_registry,
)
from optillm_core.testing import FunctionClient
from optillm_server import DEFAULT_CONFIG_CEILINGS, ServerLimits, create_app
from optillm_server._errors import ApiError
from optillm_server._limits import BodyLimit

from .support import EchoStrategy, ShoutStrategy, last_user, replying, serving

pytestmark = pytest.mark.anyio

LIMIT = 30  # seconds any one exchange may take: only a hang reaches it
QUESTION = [{"role": "user", "content": "What is 12 + 7?"}]


class Greedy(Optimizer[OptimizerConfig]):
    """Asks again and again, keeping each answer as the best so far, until the budget stops it."""

    name: ClassVar[str] = "greedy"
    description: ClassVar[str] = "test strategy: improves its answer until the budget runs out"

    async def run(self, ctx: RunContext[OptimizerConfig]) -> Outcome:
        for round_number in itertools.count(1):
            completion = await ctx.generate(ctx.prompt(f"round {round_number}: {ctx.query}"))
            ctx.record_best(completion.text, f"after {round_number} round(s)")
        raise AssertionError("unreachable")


class DraftThenFinal(Optimizer[OptimizerConfig]):
    """Records a draft as the best so far, then streams a final answer."""

    name: ClassVar[str] = "draft_final"
    description: ClassVar[str] = "test strategy: a draft, then a streamed final answer"

    async def run(self, ctx: RunContext[OptimizerConfig]) -> Outcome:
        draft = await ctx.generate(ctx.prompt(f"draft: {ctx.query}"))
        ctx.record_best(draft.text)
        final = await ctx.generate_final(ctx.prompt(f"final: {ctx.query}"))
        return Outcome(answer=final.text)


class BadPlan(ShoutStrategy):
    """A plugin whose planning hook has a bug."""

    name: ClassVar[str] = "bad_plan"

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int | None:
        raise ZeroDivisionError("a bug in the plugin")


def registry() -> OptimizerRegistry:
    strategies = OptimizerRegistry(source=[])
    for strategy in (Greedy, DraftThenFinal, EchoStrategy, ShoutStrategy, BadPlan):
        strategies.register(strategy)
    return strategies


async def post(base_url: str, body: dict[str, Any]) -> httpx.Response:
    with anyio.fail_after(LIMIT):
        async with httpx.AsyncClient(timeout=LIMIT) as http:
            return await http.post(f"{base_url}/chat/completions", json=body)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = payload["error"]
    return error


def data_events(response: httpx.Response) -> list[Any]:
    payloads = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


def content_of(events: list[Any], index: int = 0) -> str:
    return "".join(
        (c["choices"][0]["delta"].get("content") or "")
        for c in events
        if isinstance(c, dict) and c.get("choices") and c["choices"][0]["index"] == index
    )


# -- the body -----------------------------------------------------------------------------------------


async def raw_exchange(base_url: str, head: bytes, *parts: bytes) -> bytes:
    """Send ``head`` and ``parts`` on a fresh connection, then read until the server closes it."""
    port = urlsplit(base_url).port
    assert port is not None
    received = b""
    with anyio.fail_after(LIMIT):
        async with await anyio.connect_tcp("127.0.0.1", port) as sock:
            await sock.send(head)
            for part in parts:
                await sock.send(part)
            while True:
                try:
                    received += await sock.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                    break
    return received


def parse_raw(response: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


async def test_a_body_declared_over_the_limit_is_a_413_before_it_is_read() -> None:
    client = FunctionClient(replying)
    async with serving(create_app(client=client, model="m", registry=registry())) as url:
        head = (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % (100 * 1024 * 1024)
        )
        # 100 MiB promised, 1 KiB sent: the answer comes at once and the connection is closed
        response = await raw_exchange(url, head, b'{"model": "greedy-m", "messages": [' + b" " * 1024)
    status, headers, payload = parse_raw(response)
    assert status == 413
    assert headers["connection"] == "close"
    assert payload["error"]["code"] == "request_too_large"
    assert payload["error"]["type"] == "invalid_request_error"
    assert str(32 * 1024 * 1024) in payload["error"]["message"]
    assert client.requests == []


async def test_a_chunked_body_is_counted_as_it_arrives_and_refused_once_over_the_limit() -> None:
    client = FunctionClient(replying)
    app = create_app(client=client, model="m", registry=registry(), limits=ServerLimits(max_body_bytes=4096))
    async with serving(app) as url:
        head = (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        piece = b"400\r\n" + b" " * 1024 + b"\r\n"  # 1 KiB chunks; the body never ends (no 0-length chunk)
        response = await raw_exchange(url, head, *[piece] * 5)
    status, headers, payload = parse_raw(response)
    assert status == 413
    assert headers["connection"] == "close"
    assert "4096 bytes" in payload["error"]["message"]
    assert client.requests == []


@given(
    pieces=st.lists(st.integers(min_value=0, max_value=300), max_size=12),
    limit=st.integers(min_value=1, max_value=2000),
    declared=st.booleans(),
)
def test_the_body_limit_reads_no_further_than_the_piece_that_passes_it(
    pieces: list[int], limit: int, declared: bool
) -> None:
    """Under the limit every byte arrives; over it, nothing past the first piece that crosses it is taken,
    and nothing at all when ``Content-Length`` says so first."""
    total = sum(pieces)
    taken: list[int] = []

    async def receive() -> Message:
        index = len(taken)
        size = pieces[index] if index < len(pieces) else 0
        taken.append(size)
        return {"type": "http.request", "body": b"x" * size, "more_body": index < len(pieces) - 1}

    read: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            read.append(message["body"])
            if not message["more_body"]:
                return

    async def send(message: Message) -> None:
        raise AssertionError("the middleware itself never answers")

    headers = [(b"content-length", str(total).encode())] if declared else []
    scope: Scope = {"type": "http", "headers": headers}
    run = BodyLimit(app, max_bytes=limit)
    if total <= limit:
        anyio.run(run, scope, receive, send)
        assert sum(len(body) for body in read) == total
        return
    with pytest.raises(ApiError) as caught:
        anyio.run(run, scope, receive, send)
    error = caught.value
    assert (error.status, error.code, error.headers()) == (413, "request_too_large", {"connection": "close"})
    if declared:
        assert taken == []
    else:
        crossing = next(i for i in range(len(pieces)) if sum(pieces[: i + 1]) > limit)
        assert len(taken) == crossing + 1


async def test_a_body_under_the_limit_is_served() -> None:
    app = create_app(
        client=FunctionClient(replying), model="m", registry=registry(), limits=ServerLimits(max_body_bytes=4096)
    )
    async with serving(app) as url:
        response = await post(url, {"model": "shout-m", "messages": QUESTION})
    assert response.status_code == 200, response.text


# -- the request --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param({"model": "shout-m", "n": 9}, "n", id="n"),
        pytest.param({"model": "shout&shout&shout-m"}, "model", id="pipeline"),
        pytest.param({"model": "shout|shout|shout-m"}, "model", id="parallel"),
        pytest.param({"model": "m", "optillm_approach": "shout&shout&shout"}, "optillm_approach", id="approach"),
        pytest.param({"model": "shout-m", "messages": [{"role": "user", "content": "hi"}] * 11}, "messages", id="msgs"),
    ],
)
async def test_requests_over_a_limit_are_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    client = FunctionClient(replying)
    limits = ServerLimits(max_n=8, max_pipeline_length=2, max_messages=10)
    async with serving(create_app(client=client, model="m", registry=registry(), limits=limits)) as url:
        response = await post(url, {"messages": QUESTION, **body})
    error = error_of(response, 400)
    assert (error["param"], error["code"]) == (param, "limit_exceeded")
    assert "optillm serve --max-" in error["message"]
    assert client.requests == []


async def test_requests_at_the_limits_are_served() -> None:
    limits = ServerLimits(max_n=2, max_pipeline_length=2, max_messages=3)
    messages = [*QUESTION, {"role": "assistant", "content": "19"}, {"role": "user", "content": "Sure?"}]
    app = create_app(client=FunctionClient(replying), model="m", registry=registry(), limits=limits)
    async with serving(app) as url:
        response = await post(url, {"model": "shout&shout-m", "n": 2, "messages": messages})
    assert response.status_code == 200, response.text
    assert len(response.json()["choices"]) == 2


@pytest.mark.parametrize(
    ("model", "config", "param"),
    [
        pytest.param("mcts-m", {"num_simulations": 1000}, "optillm_config.num_simulations", id="mcts"),
        pytest.param("mars-m", {"num_agents": 64}, "optillm_config.num_agents", id="mars"),
        pytest.param("bon-m", {"n": 64}, "optillm_config.n", id="bon"),
        pytest.param("moa-m", {"max_concurrency": 500}, "optillm_config.max_concurrency", id="any-strategy"),
        pytest.param(
            "moa|mcts-m", {"mcts": {"num_simulations": 50}}, "optillm_config.mcts.num_simulations", id="several"
        ),
    ],
)
async def test_config_values_above_the_servers_ceiling_are_a_400(
    model: str, config: dict[str, Any], param: str
) -> None:
    client = FunctionClient(replying)
    async with serving(create_app(client=client, model="m", registry=default_registry())) as url:
        response = await post(url, {"model": model, "messages": QUESTION, "optillm_config": config})
    error = error_of(response, 400)
    assert (error["param"], error["code"]) == (param, "config_above_ceiling")
    field = param.rsplit(".", 1)[1]
    strategy = model.split("-")[0].split("|")[-1]
    ceiling = {**DEFAULT_CONFIG_CEILINGS["*"], **DEFAULT_CONFIG_CEILINGS[strategy]}[field]
    assert f"ceiling of {ceiling:g}" in error["message"]
    assert f"--config-ceiling {strategy}.{field}=N" in error["message"]
    assert client.requests == []


async def test_ceilings_are_the_servers_to_set_and_apply_to_values_a_request_sets() -> None:
    limits = ServerLimits().with_ceilings({"echo": {"drafts": 2}})
    client = FunctionClient(replying)
    async with serving(create_app(client=client, model="m", registry=registry(), limits=limits)) as url:
        refused = await post(url, {"model": "echo-m", "messages": QUESTION, "optillm_config": {"drafts": 3}})
        allowed = await post(url, {"model": "echo-m", "messages": QUESTION, "optillm_config": {"drafts": "2"}})
    assert error_of(refused, 400)["param"] == "optillm_config.drafts"
    assert allowed.status_code == 200, allowed.text
    assert limits.config_ceilings["moa"] == DEFAULT_CONFIG_CEILINGS["moa"]  # the defaults stay


# -- the budget: refused up front ---------------------------------------------------------------------


async def test_a_plan_over_the_call_budget_is_refused_before_any_call_and_says_what_it_needs() -> None:
    client = FunctionClient(replying)  # no native n: moa makes 3 candidate calls, a critique and a synthesis
    app = create_app(client=client, model="m", registry=default_registry(), limits=ServerLimits(max_request_calls=10))
    async with serving(app) as url:
        refused = await post(url, {"model": "moa-m", "n": 4, "messages": QUESTION})
        fits = await post(url, {"model": "moa-m", "n": 2, "messages": QUESTION})
    error = error_of(refused, 400)
    assert error["code"] == "request_budget_exceeded"
    assert error["param"] == "n"
    assert error["message"].startswith(
        "moa with n=4 makes at least 20 upstream calls (5 per run); this server allows 10 per request"
    )
    assert "--max-request-calls" in error["message"]
    assert fits.status_code == 200, fits.text
    assert fits.json()["optillm"] == {"llm_calls": 10, "budget_exhausted": False}
    assert len(client.requests) == 10  # only the request that fit made calls


async def test_a_pipeline_over_the_budget_names_each_stage() -> None:
    client = FunctionClient(replying)
    app = create_app(client=client, model="m", registry=default_registry(), limits=ServerLimits(max_request_calls=9))
    async with serving(app) as url:
        response = await post(url, {"model": "moa&self_consistency-m", "messages": QUESTION})
    error = error_of(response, 400)
    assert error["message"].startswith(
        "moa&self_consistency makes at least 10 upstream calls (moa 5, self_consistency 5)"
    )
    assert error["param"] == "optillm_config"
    assert client.requests == []


async def test_a_strategy_whose_planning_fails_is_served_unchecked() -> None:
    app = create_app(client=FunctionClient(replying), model="m", registry=registry())
    async with serving(app) as url:
        response = await post(url, {"model": "bad_plan-m", "messages": QUESTION})
    assert response.status_code == 200, response.text


async def test_a_prompt_too_long_for_the_token_budget_is_refused_before_any_call() -> None:
    client = FunctionClient(replying)
    limits = ServerLimits(max_request_tokens=50_000)
    long_question = [{"role": "user", "content": "word " * 20_000}]  # 100,000 characters: at least 12,500 tokens
    async with serving(create_app(client=client, model="m", registry=default_registry(), limits=limits)) as url:
        response = await post(url, {"model": "moa-m", "messages": long_question})
    error = error_of(response, 400)
    assert (error["code"], error["param"]) == ("request_budget_exceeded", "messages")
    assert "at least 62500 prompt tokens" in error["message"]
    assert "--max-request-tokens" in error["message"]
    assert client.requests == []


# -- the budget: reached mid-run ------------------------------------------------------------------------


async def test_a_run_that_reaches_the_budget_answers_with_its_best_so_far_marked() -> None:
    client = FunctionClient(replying)
    limits = ServerLimits(max_request_calls=3)
    async with serving(create_app(client=client, model="m", registry=registry(), limits=limits)) as url:
        response = await post(url, {"model": "greedy-m", "messages": QUESTION})
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["choices"][0]["message"]["content"] == "reply to round 3: What is 12 + 7?"
    assert payload["choices"][0]["finish_reason"] == "stop"
    assert payload["optillm"] == {
        "llm_calls": 3,
        "budget_exhausted": True,
        "budget_limit": "calls",
        "exhausted_choices": [0],
    }
    assert response.headers["x-optillm-budget-exhausted"] == "calls"
    assert len(client.requests) == 3
    assert payload["usage"]["prompt_tokens"] > 0


async def test_every_choice_shares_one_budget() -> None:
    client = FunctionClient(replying)
    async with serving(
        create_app(client=client, model="m", registry=registry(), limits=ServerLimits(max_request_calls=5))
    ) as url:
        response = await post(url, {"model": "greedy-m", "n": 2, "messages": QUESTION})
    assert response.status_code == 200, response.text
    payload = response.json()
    assert len(client.requests) == 5
    assert payload["optillm"]["exhausted_choices"] == [0, 1]
    assert all(c["message"]["content"].startswith("reply to round") for c in payload["choices"])


async def test_a_pipeline_ends_at_the_stage_the_budget_stopped() -> None:
    client = FunctionClient(replying)
    limits = ServerLimits(max_request_calls=2)
    async with serving(create_app(client=client, model="m", registry=registry(), limits=limits)) as url:
        stopped_in_stage_one = await post(url, {"model": "greedy&shout-m", "messages": QUESTION})
        # shout answers (1 call); echo drafts (call 2) and cannot make its final call: shout's answer stands
        stopped_before_an_answer = await post(url, {"model": "shout&echo-m", "messages": QUESTION})
    first = stopped_in_stage_one.json()
    assert first["choices"][0]["message"]["content"] == "reply to round 2: What is 12 + 7?"
    assert first["optillm"]["budget_exhausted"] is True
    second = stopped_before_an_answer.json()
    assert second["choices"][0]["message"]["content"] == "REPLY TO SHOUT: WHAT IS 12 + 7?"
    assert second["optillm"] == {
        "llm_calls": 2,
        "budget_exhausted": True,
        "budget_limit": "calls",
        "exhausted_choices": [0],
    }
    assert not any(last_user(r.prompt).startswith("shout:") for r in client.requests[:2])


async def test_a_run_with_no_answer_when_the_budget_runs_out_is_a_clear_error() -> None:
    client = FunctionClient(replying)
    limits = ServerLimits(max_request_calls=2)
    async with serving(create_app(client=client, model="m", registry=registry(), limits=limits)) as url:
        response = await post(url, {"model": "echo-m", "messages": QUESTION, "optillm_config": {"drafts": 2}})
    error = error_of(response, 400)
    assert error["code"] == "request_budget_exhausted"
    assert "2 of 2 LLM calls" in error["message"]
    assert len(client.requests) == 2


async def test_the_time_budget_cuts_a_hanging_call_and_answers_with_the_best_so_far() -> None:
    async def slow_after_the_first(prompt: Prompt, settings: GenerationSettings) -> str:
        if last_user(prompt).startswith("round 2"):
            await anyio.sleep_forever()
        return replying(prompt, settings)

    client = FunctionClient(slow_after_the_first)
    limits = ServerLimits(max_request_seconds=0.5)
    async with serving(create_app(client=client, model="m", registry=registry(), limits=limits)) as url:
        response = await post(url, {"model": "greedy-m", "messages": QUESTION})
    payload = response.json()
    assert payload["choices"][0]["message"]["content"] == "reply to round 1: What is 12 + 7?"
    assert payload["optillm"]["budget_limit"] == "time"
    assert response.headers["x-optillm-budget-exhausted"] == "time"


async def test_a_streamed_run_that_reaches_the_budget_marks_its_finish_chunk() -> None:
    client = FunctionClient(replying)
    limits = ServerLimits(max_request_calls=2)
    async with serving(create_app(client=client, model="m", registry=registry(), limits=limits)) as url:
        body = {"model": "greedy-m", "messages": QUESTION, "stream": True, "stream_options": {"include_usage": True}}
        response = await post(url, body)
    events = data_events(response)
    assert events[-1] == "[DONE]"
    assert content_of(events) == "reply to round 2: What is 12 + 7?"
    [finish] = [e for e in events if isinstance(e, dict) and e["choices"] and e["choices"][0]["finish_reason"]]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert finish["optillm"] == {
        "llm_calls": 2,
        "budget_exhausted": True,
        "budget_limit": "calls",
        "exhausted_choices": [0],
    }
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["optillm"]["budget_exhausted"] is True


class _StallingFinal(FunctionClient):
    """Answers the draft; the final answer sends its first word, then stalls until it is cancelled."""

    __test__ = False

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        if not last_user(prompt).startswith("final:"):
            async for event in super().request_stream(prompt, settings):
                yield event
            return
        yield OutputTextDelta(delta="The ", index=0)
        await anyio.sleep_forever()


async def test_a_budget_that_runs_out_mid_stream_ends_the_stream_with_an_error_not_the_wrong_text() -> None:
    client = _StallingFinal(replying)
    limits = ServerLimits(max_request_seconds=0.5)
    async with serving(create_app(client=client, model="m", registry=registry(), limits=limits)) as url:
        response = await post(url, {"model": "draft_final-m", "messages": QUESTION, "stream": True})
    events = data_events(response)
    assert content_of(events) == "The "
    assert events[-1] == "[DONE]"
    error = events[-2]["error"]
    assert error["code"] == "request_budget_exhausted"
    assert "(time)" in error["message"]
    assert not any(isinstance(e, dict) and e.get("choices") and e["choices"][0]["finish_reason"] for e in events)


async def test_budget_limits_can_be_turned_off() -> None:
    limits = ServerLimits(max_request_calls=None, max_request_tokens=None, max_request_seconds=None)
    client = FunctionClient(replying)
    async with serving(create_app(client=client, model="m", registry=registry(), limits=limits)) as url:
        response = await post(url, {"model": "echo-m", "messages": QUESTION, "optillm_config": {"drafts": 8}})
    assert response.status_code == 200, response.text
    assert response.json()["optillm"] == {"llm_calls": 9, "budget_exhausted": False}
