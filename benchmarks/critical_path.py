"""Section 1: each strategy's wall time against its measured critical path, through the real router."""

from __future__ import annotations as _annotations

import time
from typing import Any

from benchmarks._clients import StrategyCase, client_label, router_client, strategy_cases
from benchmarks._fakeproc import FakeServerProcess, fake_server_process
from benchmarks._options import Options
from benchmarks._oracle import generate_questions
from benchmarks._report import Section, Table

__all__ = ("run",)

NAME = "critical-path"
TARGET_RATIO = 1.10
MAX_TOKENS = 8000
UPSTREAM = {
    "moa": "3 calls, 0.39 s",
    "mcts": "14 sequential calls, 1.48 s",
    "mars": "104–106 calls, ~23 round-trips, 2.37 s",
    "baseline": "1 call",
}


async def _one_run(case: StrategyCase, server: FakeServerProcess, native_n: bool, latency: float) -> dict[str, Any]:
    query = generate_questions(1, seed=7)[0].text
    server.reset(latency=latency, native_n=native_n, p=1.0)
    client = router_client(server.base_url, native_n=native_n)
    label = client_label(client)
    try:
        await client.complete(_warm_prompt(), None)  # opens the connection before the clock starts
        server.reset(latency=latency, native_n=native_n, p=1.0)
        optimizer = case.build()
        started = time.perf_counter()
        solution = await optimizer.optimize(query, client, settings=case.settings)
        wall = time.perf_counter() - started
    finally:
        await client.aclose()
    log = server.log()
    depth = log.depth()
    return {
        "wall_s": wall,
        "client": label,
        "client_native_n": client.supports_native_n,
        "depth": depth,
        "wire_requests": log.calls,
        "max_n": max(log.ns, default=1),
        "llm_calls": solution.metadata.llm_calls,
        "tokens": solution.usage.total_tokens,
        "completion_tokens": solution.usage.output_tokens,
        "ratio": wall / (depth * latency) if depth else None,
        "errors": log.errors,
    }


def _warm_prompt() -> Any:
    from optillm_core import Prompt

    return Prompt.from_query("Say hello.")


async def run(options: Options) -> Section:
    latency = 0.01 if options.smoke else 0.1
    repeats = 1 if options.smoke else 3
    section = Section(NAME, "1. Critical path", options.command(NAME), smoke=options.smoke)
    table = Table(
        f"Wall time against the measured critical path at {latency * 1000:.0f} ms per call",
        [
            "strategy",
            "native n",
            "LLM calls",
            "requests on the wire",
            "sequential depth",
            "wall (s)",
            "depth × latency (s)",
            "ratio",
            "target",
            "completion tokens",
            "upstream optillm 0.4.0",
        ],
    )
    runs: dict[str, Any] = {}
    with fake_server_process(latency=latency, p=1.0) as server:
        for case in strategy_cases(max_tokens=MAX_TOKENS):
            for native_n in (True, False):
                samples = [await _one_run(case, server, native_n, latency) for _ in range(repeats)]
                median = sorted(samples, key=lambda s: s["wall_s"])[len(samples) // 2]
                runs[f"{case.name}/native_n={native_n}"] = samples
                ratio = median["ratio"]
                table.add(
                    case.name,
                    "on" if median["client_native_n"] else "off",
                    median["llm_calls"],
                    median["wire_requests"],
                    median["depth"],
                    round(median["wall_s"], 3),
                    round(median["depth"] * latency, 3),
                    round(ratio, 3) if ratio is not None else None,
                    f"≤ {TARGET_RATIO:.2f} " + ("✅" if ratio is not None and ratio <= TARGET_RATIO else "❌"),
                    median["completion_tokens"],
                    UPSTREAM.get(case.name) if native_n else None,
                )
    section.tables.append(table)
    section.data["runs"] = runs
    section.data["latency_s"] = latency
    section.notes.extend(
        [
            f"Every strategy at its defaults, one generated question, caller max_tokens {MAX_TOKENS}; "
            "the fake server answers as the oracle with p = 1 (always right, verifiers say correct).",
            f"Client: {_labels(runs)} with one `custom` OpenAI-compatible provider, in the "
            "harness process; the fake server runs in a separate process. Sequential depth is the longest chain "
            "of requests in the server's log in which each starts after the previous one ended.",
            "native n off: the server rejects n > 1 and the client hides native n, so core fans n out into "
            "concurrent single requests.",
            f"Median of {repeats} runs by wall time; the connection is warmed with one call before each run.",
            "Spread of wall times per row (min–max): "
            + "; ".join(
                f"{key}: {min(s['wall_s'] for s in v):.3f}–{max(s['wall_s'] for s in v):.3f} s"
                for key, v in runs.items()
            ),
        ]
    )
    if not runs:
        section.notes.append("No strategies are installed.")
    return section


def _labels(runs: dict[str, Any]) -> str:
    labels = sorted({sample["client"] for samples in runs.values() for sample in samples})
    return ", ".join(labels) or "the router"
