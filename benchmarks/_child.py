"""Measurements that need a fresh process of their own (peak memory): ``python -m benchmarks._child``."""

from __future__ import annotations as _annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from functools import partial
from typing import Any

import anyio

from benchmarks._logs import quiet_logs
from benchmarks._procs import ROOT, child_env

__all__ = ("run_child",)


def run_child(task: str, *args: str, timeout: float = 600) -> dict[str, Any]:
    """Run ``task`` in a fresh interpreter and return the JSON it prints."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks._child", task, *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child '{task}' failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _moa_scale(base_url: str, runs: int, strategy: str) -> dict[str, Any]:
    from benchmarks._clients import router_client
    from benchmarks._oracle import generate_questions
    from benchmarks._settled import every_outcome
    from optillm_core import Prompt, default_registry

    info = default_registry().get(strategy)
    client = router_client(base_url)
    questions = [q.text for q in generate_questions(runs, seed=11)]
    await client.complete(Prompt.from_query("Say hello."))
    rss_before = _peak_rss_mb()
    rounds = {}
    for label in ("cold", "warm"):
        started, cpu = time.perf_counter(), time.process_time()
        results = await every_outcome(partial(info.optimizer().optimize, q, client) for q in questions)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        errors = [r for r in results if isinstance(r, Exception)]
        rounds[label] = {
            "wall_s": wall,
            "client_cpu_s": cpu,
            "llm_calls": sum(r.metadata.llm_calls for r in results if not isinstance(r, Exception)),
            "errors": len(errors),
            "error_types": sorted({type(e).__name__ for e in errors}),
            "error_example": str(errors[0])[:300] if errors else None,
        }
    await client.aclose()
    return {"runs": runs, "rounds": rounds, "rss_before_mb": rss_before, "peak_rss_mb": _peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=["moa-scale"])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--strategy", default="moa")
    options = parser.parse_args()
    quiet_logs()
    result = anyio.run(_moa_scale, options.base_url, options.runs, options.strategy)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
