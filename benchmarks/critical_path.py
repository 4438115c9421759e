"""Section 1: each strategy's wall time against its measured critical path, through the real router."""

from __future__ import annotations as _annotations

import time
from typing import Any

import anyio

from benchmarks._clients import StrategyCase, router_client, strategy_cases
from benchmarks._fakeproc import FakeServerProcess, fake_server_process
from benchmarks._options import Options
from benchmarks._oracle import generate_questions
from benchmarks._report import Section, Table

__all__ = ("run",)

NAME = "critical-path"
TITLE = "1. Critical path"
TARGET_RATIO = 1.05
MAX_TOKENS = 8000
# (oracle p, native n): an easy model in both wire modes, and a harder one that makes verifiers disagree.
MODES = ((1.0, True), (1.0, False), (0.5, True))
UPSTREAM = {
    "bon": "4 calls, 0.46 s",
    "self_consistency": "5 sequential calls, 0.56 s",
    "moa": "3 calls, 0.39 s",
    "mcts": "14 sequential calls, 1.48 s",
    "mars": "104–106 calls, ~23 round-trips, 2.37 s",
    "baseline": "1 call",
}
# Critical paths the strategies state (in round-trips), checked against the measured depth.
STATED_DEPTH = {"baseline": 1, "moa": 3, "bon": 2, "self_consistency": 1, "majority_voting": 1, "genselect": 2}


def rounds_of(intervals: list[tuple[float, float]], bodies: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A run's request bodies by round-trip: each request in the round after the latest one that
    ended before it started (so the rounds are as many as the run's sequential depth)."""
    ends: list[tuple[float, int]] = []
    rounds: list[list[dict[str, Any]]] = []
    for (start, end), body in sorted(zip(intervals, bodies, strict=True), key=lambda item: item[0][0]):
        level = max((level for ended, level in ends if ended <= start), default=-1) + 1
        ends.append((end, level))
        while len(rounds) <= level:
            rounds.append([])
        rounds[level].append(body)
    return rounds


async def _floor(server: FakeServerProcess, rounds: list[list[dict[str, Any]]], latency: float, repeats: int) -> float:
    """The median wall time of the same requests, round by round, sent with bare aiohttp
    (an anyio task group per round, no router, no pydantic), after one unmeasured warm-up."""
    import aiohttp

    url = server.base_url + "/chat/completions"
    walls = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def post(body: dict[str, Any]) -> None:
            async with session.post(url, json=body) as response:
                await response.json()

        for attempt in range(repeats + 1):
            server.reset(latency=latency)
            started = time.perf_counter()
            for bodies in rounds:
                async with anyio.create_task_group() as tg:
                    for body in bodies:
                        tg.start_soon(post, body)
            if attempt:
                walls.append(time.perf_counter() - started)
    return sorted(walls)[len(walls) // 2]


async def _runs(
    case: StrategyCase, server: FakeServerProcess, native_n: bool, latency: float, repeats: int, p: float
) -> tuple[list[dict[str, Any]], list[list[list[dict[str, Any]]]]]:
    """One unmeasured warm-up run (connections, lazy imports), then ``repeats`` measured runs.

    Returns the samples and, for :func:`_floor`, each sample's requests by round.
    """
    query = generate_questions(1, seed=7)[0].text
    server.reset(latency=latency, native_n=native_n, p=p)
    client = router_client(server.base_url, native_n=native_n)
    samples = []
    rounds = []
    try:
        await case.build().optimize(query, client, settings=case.settings)
        for _ in range(repeats):
            server.reset(latency=latency, native_n=native_n, p=p)
            optimizer = case.build()
            started = time.perf_counter()
            solution = await optimizer.optimize(query, client, settings=case.settings)
            wall = time.perf_counter() - started
            log = server.log(bodies=True)
            depth = log.depth()
            samples.append(
                {
                    "wall_s": wall,
                    "depth": depth,
                    "wire_requests": log.calls,
                    "max_n": max(log.ns, default=1),
                    "llm_calls": solution.metadata.llm_calls,
                    "tokens": solution.usage.total_tokens,
                    "completion_tokens": solution.usage.output_tokens,
                    "ratio": wall / (depth * latency) if depth else None,
                    "errors": log.errors,
                    "answer": solution.answer[-80:],
                }
            )
            rounds.append(rounds_of(log.intervals, log.bodies))
    finally:
        await client.aclose()
    return samples, rounds


async def run(options: Options) -> Section:
    latency = 0.01 if options.smoke else 0.1
    repeats = 1 if options.smoke else 9
    section = Section(NAME, TITLE, options.command(NAME), smoke=options.smoke)
    table = Table(
        f"Wall time against the measured critical path at {latency * 1000:.0f} ms per call",
        [
            "strategy",
            "oracle p",
            "native n",
            "LLM calls",
            "requests on the wire",
            "largest n in a request",
            "sequential depth",
            "wall (s)",
            "depth × latency (s)",
            "ratio",
            "overhead per round-trip (ms)",
            "same requests, bare aiohttp: ratio",
            "optillm's part per round-trip (ms)",
            "target",
            "completion tokens",
            "upstream optillm 0.4.0",
        ],
    )
    runs: dict[str, Any] = {}
    floors: dict[str, float] = {}
    with fake_server_process(latency=latency, p=1.0) as server:
        for case in strategy_cases(max_tokens=MAX_TOKENS, smoke=options.smoke):
            for p, native_n in MODES:
                samples, rounds = await _runs(case, server, native_n, latency, repeats, p)
                middle = sorted(range(len(samples)), key=lambda i: samples[i]["wall_s"])[len(samples) // 2]
                median = samples[middle]
                floor = await _floor(server, rounds[middle], latency, repeats)
                floors[f"{case.name}/p={p}/native_n={native_n}"] = floor
                runs[f"{case.name}/p={p}/native_n={native_n}"] = samples
                ratio = median["ratio"]
                table.add(
                    case.name,
                    p,
                    "on" if native_n else "off",
                    median["llm_calls"],
                    median["wire_requests"],
                    median["max_n"],
                    median["depth"],
                    round(median["wall_s"], 3),
                    round(median["depth"] * latency, 3),
                    round(ratio, 3) if ratio is not None else None,
                    round((median["wall_s"] - median["depth"] * latency) / max(median["depth"], 1) * 1000, 1),
                    round(floor / (median["depth"] * latency), 3) if median["depth"] else None,
                    round((median["wall_s"] - floor) / max(median["depth"], 1) * 1000, 1),
                    f"≤ {TARGET_RATIO:.2f} " + ("✅" if ratio is not None and ratio <= TARGET_RATIO else "❌"),
                    median["completion_tokens"],
                    UPSTREAM.get(case.name) if native_n and p == 1.0 else None,
                )
    section.tables.append(table)
    section.data["runs"] = runs
    section.data["floor_wall_s"] = floors
    section.data["latency_s"] = latency
    section.notes.extend(
        [
            f"Every strategy at its defaults, one generated question, caller max_tokens {MAX_TOKENS}; "
            "the fake server answers as the oracle: p = 1 (always right, so verifiers say correct and votes agree), "
            "and p = 0.5 (half the draws wrong, the judge right 75 % of the time), which makes MARS verify and "
            "improve for more rounds and MCTS scores differ.",
            "Client: optillm_router's ModelClientRouter with one `custom` OpenAI-compatible provider, in the "
            "harness process; the fake server runs in a separate process. Sequential depth is the longest chain "
            "of requests in the server's log in which each starts after the previous one ended.",
            "native n on: the provider client is declared to honour n (a `client_factory` with native_n=True), "
            "so one request carries all n choices; off: the server rejects n > 1 and the `custom` provider's "
            "default capabilities (no native n) make the router fan n out into concurrent single requests.",
            f"Median of {repeats} runs by wall time, after one unmeasured warm-up run of the same strategy on the "
            "same client (so connections are open and lazy imports done).",
            "'Same requests, bare aiohttp': the requests of the median run, grouped by round-trip (each in the "
            "round after the latest request that ended before it started), sent again round by round with a plain "
            "`aiohttp.ClientSession`, one anyio task per request (no router, no strategy, no pydantic): the same "
            f"bodies, answers and depth at the same latency, median of {repeats} after a warm-up. It is the part of "
            "the overhead that the HTTP round-trips between two processes on this VM cost without optillm.",
            "optillm's part per round-trip: the median run's wall time less the bare-aiohttp median, over the depth "
            "(what the router, core and the strategy add to each round-trip; negative where the floor's median run "
            "was the slower one).",
            "Spread of wall times per row (min–max): "
            + "; ".join(
                f"{key}: {min(s['wall_s'] for s in v):.3f}–{max(s['wall_s'] for s in v):.3f} s"
                for key, v in runs.items()
            ),
        ]
    )
    stated = [
        f"{key}: {sorted({s['depth'] for s in samples})} (stated {STATED_DEPTH[key.split('/')[0]]}) "
        + ("✅" if {s["depth"] for s in samples} == {STATED_DEPTH[key.split("/")[0]]} else "❌")
        for key, samples in runs.items()
        if key.split("/")[0] in STATED_DEPTH
    ]
    if stated:
        section.notes.append("Measured depth against the stated critical path: " + "; ".join(stated))
    if not runs:
        section.notes.append("No strategies are installed.")
    return section
