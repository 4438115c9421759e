"""Section 7: every strategy and pass-through against an upstream that fails the way real providers do."""

from __future__ import annotations as _annotations

import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import uvicorn
from starlette.types import ASGIApp

from benchmarks._clients import BASELINE, StrategyCase, strategy_cases
from benchmarks._options import Options
from benchmarks._report import Section, Table
from optillm_core import default_registry
from optillm_router import MAX_RETRIES, ModelClientRouter, ProviderRoutingConfig
from optillm_router.testing import RECOVERABLE_STREAM_FAULTS, TRANSIENT_FAULTS, FakeProviderServer, FaultPlan
from optillm_server import Upstream, create_app

__all__ = ("run",)

NAME = "faults"
TITLE = "7. Faults"
RATES = (0.1, 0.3, 0.5)
TARGET_RATES = (0.1, 0.3)
"""Fault rates at which every run must succeed."""
LATENCY = 0.02
"""Seconds the fake provider takes per request."""
ATTEMPT_TIMEOUT = 1.0
"""Seconds an attempt may take (router and pass-through) before a hung request is given up."""
SMALL: dict[str, dict[str, Any]] = {
    "mars": {"num_agents": 2, "max_iterations": 1, "verification_passes_required": 1, "aggregation_loops": 1},
}
QUESTION = "What is six times seven?"
PASS_THROUGH = "pass-through"


@dataclass(frozen=True)
class Sample:
    ok: bool
    wall_s: float
    requests: int
    faults: int
    error: str | None = None


Attempt = Callable[[], Awaitable[None]]
"""One run: returns when it succeeded, raises when it failed."""


async def _measure(server: FakeProviderServer, plan: FaultPlan, attempt: Attempt) -> Sample:
    server.faults = plan
    before, faults_before = len(server.requests), sum(server.faults_injected.values())
    started = time.perf_counter()
    error: str | None = None
    try:
        await attempt()
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc)[:120]}"
    wall = time.perf_counter() - started
    faults = sum(server.faults_injected.values()) - faults_before
    return Sample(error is None, wall, len(server.requests) - before, faults, error)


def _router(server: FakeProviderServer) -> ModelClientRouter:
    """The router at its default retries and cooldown, with one provider: the faulty server."""
    return ModelClientRouter(ProviderRoutingConfig(primary=server.spec(), timeout_seconds=ATTEMPT_TIMEOUT))


def _router_attempt(case: StrategyCase, router: ModelClientRouter) -> Attempt:
    async def attempt() -> None:
        solution = await case.build().optimize(QUESTION, router, settings=case.settings)
        if not solution.answer:
            raise RuntimeError("empty answer")

    return attempt


@asynccontextmanager
async def _serving(app: ASGIApp) -> AsyncIterator[str]:
    """``app`` under uvicorn in this event loop, on a free loopback port; yields its ``/v1`` URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            try:
                yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
            finally:
                server.should_exit = True
    finally:
        sock.close()


@asynccontextmanager
async def _proxy(server: FakeProviderServer) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """``optillm serve``'s app on loopback: strategies through the router, pass-through forwarded."""
    async with _router(server) as router:
        upstream = Upstream(server.base_url, "upstream-key")
        app = create_app(client=router, model=server.model, upstream=upstream, upstream_timeout=ATTEMPT_TIMEOUT)
        async with _serving(app) as url, httpx.AsyncClient(timeout=120) as http:
            yield url, http


def _proxy_attempt(
    url: str, http: httpx.AsyncClient, model: str, stream: bool, config: dict[str, Any] | None = None
) -> Attempt:
    async def attempt() -> None:
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": QUESTION}], "stream": stream}
        if config:
            body["optillm_config"] = config
        response = await http.post(f"{url}/chat/completions", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"status {response.status_code}: {response.text[:120]}")
        text = _streamed_text(response.text) if stream else response.json()["choices"][0]["message"]["content"]
        if not text:
            raise RuntimeError("empty answer")

    return attempt


def _streamed_text(body: str) -> str:
    """The answer of an event stream; raises on an error event or a stream without ``[DONE]``."""
    payloads = [line[6:] for line in body.splitlines() if line.startswith("data: ")]
    if not payloads or payloads[-1] != "[DONE]":
        raise RuntimeError("the stream ended without [DONE]")
    events = [json.loads(p) for p in payloads[:-1]]
    errors = [e["error"] for e in events if "error" in e]
    if errors:
        raise RuntimeError(f"error event: {errors[0].get('message', '')[:120]}")
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))


async def _series(
    server: FakeProviderServer, attempt: Attempt, rates: tuple[float, ...], runs: int, *, forwarded_stream: bool
) -> dict[float, list[Sample]]:
    """``runs`` runs at each rate (0 first: the reference), each with its own seed.

    A forwarded stream cut mid-answer has reached the client and cannot be retried: those get every
    transient fault but that one. A strategy's streamed final call gets it too (core repeats it).
    """
    kinds = RECOVERABLE_STREAM_FAULTS if forwarded_stream else TRANSIENT_FAULTS
    await _measure(server, FaultPlan(), attempt)  # warm-up: connections, lazy imports
    return {
        rate: [await _measure(server, FaultPlan(rate=rate, kinds=kinds, seed=seed), attempt) for seed in range(runs)]
        for rate in (0.0, *rates)
    }


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _rows(table: Table, path: str, target: str, series: dict[float, list[Sample]]) -> None:
    print(f"[faults] {path} / {target} done", file=sys.stderr, flush=True)
    reference = _median([s.wall_s for s in series[0.0] if s.ok] or [float("nan")])
    for rate, samples in series.items():
        succeeded = sum(s.ok for s in samples)
        wall = _median([s.wall_s for s in samples])
        required = rate in TARGET_RATES or rate == 0.0
        table.add(
            path,
            target,
            f"{rate:.0%}",
            f"{succeeded}/{len(samples)}",
            round(wall, 3),
            round(wall / reference, 2) if rate else 1.0,
            round(sum(s.requests for s in samples) / len(samples), 1),
            round(sum(s.faults for s in samples) / len(samples), 1),
            ("100 % " + ("✅" if succeeded == len(samples) else "❌")) if required else None,
        )


async def run(options: Options) -> Section:
    runs = 1 if options.smoke else 3
    rates = (0.3,) if options.smoke else RATES
    section = Section(NAME, TITLE, options.command(NAME), smoke=options.smoke)
    table = Table(
        f"Runs that succeed under transient faults, {LATENCY * 1000:.0f} ms per request",
        [
            "path",
            "strategy",
            "fault rate",
            "succeeded",
            "median wall (s)",
            "wall vs no faults",
            "requests / run",
            "faults / run",
            "target",
        ],
    )
    cases = strategy_cases(options=SMALL, smoke=options.smoke)
    data: dict[str, Any] = {}
    async with FakeProviderServer("openai", latency=LATENCY) as server:
        async with _router(server) as router:
            for case in cases:
                target = PASS_THROUGH if case.name == BASELINE else case.name
                series = await _series(server, _router_attempt(case, router), rates, runs, forwarded_stream=False)
                _rows(table, "router", target, series)
                data[f"router/{target}"] = series
        async with _proxy(server) as (url, http):
            for stream in (False, True):
                path = "proxy, streamed" if stream else "proxy"
                for case in cases:
                    target = PASS_THROUGH if case.name == BASELINE else case.name
                    model = server.model if target == PASS_THROUGH else f"{case.name}-{server.model}"
                    attempt = _proxy_attempt(url, http, model, stream, SMALL.get(case.name))
                    forwarded = stream and target == PASS_THROUGH
                    series = await _series(server, attempt, rates, runs, forwarded_stream=forwarded)
                    _rows(table, path, target, series)
                    data[f"{path}/{target}"] = series
    section.tables.append(table)
    section.data["runs"] = {
        key: {f"{rate:g}": [s.__dict__ for s in samples] for rate, samples in series.items()}
        for key, series in data.items()
    }
    failures = [s.error for series in data.values() for samples in series.values() for s in samples if s.error]
    section.notes.extend(
        [
            f"{runs} runs per row, one after another, each with its own fault seed, after one unmeasured warm-up "
            "run; 'wall vs no faults' is the median wall time over the median of the same runs at 0 %.",
            "Upstream: optillm_router.testing.FakeProviderServer (OpenAI wire format, in the harness process) "
            f"answering after {LATENCY * 1000:.0f} ms; at each rate a request fails with that probability, with a "
            "fault drawn from 429 (retry-after 0.2 s), 500, 502 (a gateway's HTML page), 503, 529, a malformed "
            "200 body, a truncated body, a connection cut mid-answer, a reset and a hang. A streamed pass-through "
            "gets every fault but the cut mid-answer (forwarded text cannot be taken back); a strategy's streamed "
            "final call gets cuts too: core repeats it as a plain request.",
            f"router: ModelClientRouter at its default retries ({MAX_RETRIES}) and cooldown, one provider, attempt "
            f"timeout {ATTEMPT_TIMEOUT:g} s (what a hang costs); 'pass-through' there is one plain call. proxy: "
            "optillm_server's app on loopback, strategies (`moa-fake-model`, ...) through that router, "
            "pass-through (`fake-model`) forwarded by the proxy at Upstream's default retries "
            f"({Upstream.max_retries}, the router's policy).",
            "Every strategy in the registry at its defaults, except MARS: "
            f"{SMALL['mars']} (fewer rounds, every phase; sent as optillm_config through the proxy).",
            "Failures: " + ("; ".join(sorted(set(failures))[:6]) if failures else "none."),
        ]
    )
    if len(default_registry().names()) == 0:
        section.notes.append("No strategies are installed.")
    return section
