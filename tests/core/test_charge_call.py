"""The seam between a run's budget and a retrying client underneath it: ``charge_call`` and ``run_time_left``."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest

from optillm_core import (
    Budget,
    BudgetExhausted,
    Completed,
    GenerationSettings,
    MeteredClient,
    ModelClient,
    OutputTextDelta,
    Prompt,
    ResponseEvent,
    charge_call,
    collect_stream,
    run_time_left,
)
from optillm_core.testing import FunctionClient

pytestmark = pytest.mark.anyio

PROMPT = Prompt.from_query("q")


async def test_extra_requests_are_counted_by_every_run_metering_the_call() -> None:
    def retrying(prompt: Prompt, settings: GenerationSettings) -> str:
        charge_call(retry=True)
        charge_call(retry=False)
        return "ok"

    outer = MeteredClient(FunctionClient(retrying))
    inner = MeteredClient(outer, budget=Budget(max_calls=5))
    await inner.complete(PROMPT)
    for run in (inner, outer):
        assert (run.usage.llm_calls, run.usage.retries) == (3, 1)


async def test_a_request_beyond_a_runs_budget_is_refused_and_not_counted() -> None:
    refused: list[BudgetExhausted] = []

    def retrying(prompt: Prompt, settings: GenerationSettings) -> str:
        charge_call(retry=True)
        try:
            charge_call(retry=True)
        except BudgetExhausted as exc:
            refused.append(exc)
        return "ok"

    outer = MeteredClient(FunctionClient(retrying))
    inner = MeteredClient(outer, budget=Budget(max_calls=2))
    await inner.complete(PROMPT)
    assert refused[0].kind == "calls"
    assert (inner.usage.llm_calls, outer.usage.llm_calls) == (2, 2)  # the refusal counted nowhere


async def test_a_wait_past_the_deadline_is_refused() -> None:
    seen: list[float] = []

    def retrying(prompt: Prompt, settings: GenerationSettings) -> str:
        seen.append(run_time_left())
        charge_call(retry=True, wait=1.0)
        with pytest.raises(BudgetExhausted) as info:
            charge_call(retry=True, wait=100.0)
        assert info.value.kind == "time"
        return "ok"

    metered = MeteredClient(FunctionClient(retrying), budget=Budget(max_seconds=30.0))
    await metered.complete(PROMPT)
    assert 29.0 < seen[0] <= 30.0
    assert metered.usage.retries == 1


async def test_streams_reach_the_seam_before_their_first_event() -> None:
    seen: list[float] = []

    def answer(prompt: Prompt, settings: GenerationSettings) -> str:
        seen.append(run_time_left())
        return "streamed"

    metered = MeteredClient(FunctionClient(answer), budget=Budget(max_seconds=30.0))
    async with metered.stream(PROMPT) as events:
        assert (await collect_stream(events)).text == "streamed"
    assert seen[0] <= 30.0


class _LateCharges(ModelClient):
    """Streams a choice, then asks for another request (as a router fills choices a provider left out)."""

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        yield OutputTextDelta(delta="first")
        charge_call(retry=False)
        yield Completed()


async def test_streams_reach_the_seam_after_their_first_event_too() -> None:
    metered = MeteredClient(_LateCharges())
    async with metered.stream(PROMPT) as events:
        assert (await collect_stream(events)).text == "first"
    assert metered.usage.llm_calls == 2
    with pytest.raises(BudgetExhausted):
        async with MeteredClient(_LateCharges(), budget=Budget(max_calls=1)).stream(PROMPT) as events:
            await collect_stream(events)


async def test_outside_a_metered_call_nothing_happens() -> None:
    charge_call(retry=True, wait=1e9)
    assert run_time_left() == math.inf
