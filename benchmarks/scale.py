"""Section 3: 1,000 concurrent MoA runs in one process, and 200 concurrent ``moa-`` requests through the proxy.

The proxy rounds send the 200 requests to ``/v1/chat/completions`` (connections cold, then warm), to the
Anthropic-shaped ``/v1/messages`` (warm) and to ``/v1/responses`` streamed (warm), as Codex CLI sends
them: the same MoA runs behind every endpoint.
"""

from __future__ import annotations as _annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio

from benchmarks._child import run_child
from benchmarks._fakeproc import FakeServerProcess, fake_server_process
from benchmarks._options import Options
from benchmarks._oracle import generate_questions
from benchmarks._procs import ROOT, child_env, wait_or_kill
from benchmarks._report import Section, Table

__all__ = ("run",)

NAME = "scale"
TITLE = "3. Scale"
TARGET_PROXY_S = 1.0
ROUNDS = (
    ("cold", "chat completions"),
    ("warm", "chat completions"),
    ("warm", "messages"),
    ("warm", "responses"),
)
"""Upstream connections and endpoint of each proxy round, in order."""
ENDPOINT_PATHS = {
    "chat completions": "`/v1/chat/completions`",
    "messages": "`/v1/messages`",
    "responses": "`/v1/responses` (streamed)",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        with anyio.fail_after(60):
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the proxy exited with {process.returncode} before it was ready")
                try:
                    async with session.get(url + "/health") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await anyio.sleep(0.1)


def _chat_request(model: str, question: str) -> tuple[str, dict[str, Any]]:
    return "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": question}]}


def _chat_answer(payload: dict[str, Any]) -> str:
    return str(payload["choices"][0]["message"]["content"] or "")


def _messages_request(model: str, question: str) -> tuple[str, dict[str, Any]]:
    body = {"model": model, "max_tokens": 1024, "messages": [{"role": "user", "content": question}]}
    return "/v1/messages", body


def _messages_answer(payload: dict[str, Any]) -> str:
    return "".join(str(block.get("text", "")) for block in payload["content"] if block.get("type") == "text")


def _responses_request(model: str, question: str) -> tuple[str, dict[str, Any]]:
    return "/v1/responses", {"model": model, "input": question, "stream": True}


def _responses_answer(payload: dict[str, Any]) -> str:
    texts = [
        part.get("text", "") for item in payload["output"] if item.get("type") == "message" for part in item["content"]
    ]
    return "".join(str(text) for text in texts)


def _completed_response(stream_text: str) -> dict[str, Any]:
    """The ``response`` of a Responses stream's ``response.completed`` event (a ``ValueError`` when it has none)."""
    for line in reversed(stream_text.splitlines()):
        if line.startswith("data:"):
            event = json.loads(line[5:])
            if event.get("type") == "response.completed":
                response: dict[str, Any] = event["response"]
                return response
            raise ValueError(f"the stream ended with {event.get('type')}: {line[:200]}")
    raise ValueError("the stream had no events")


# endpoint label -> (request path and body for a question, the answer's text in a response)
ENDPOINTS: dict[str, tuple[Callable[[str, str], tuple[str, dict[str, Any]]], Callable[[dict[str, Any]], str]]] = {
    "chat completions": (_chat_request, _chat_answer),
    "messages": (_messages_request, _messages_answer),
    "responses": (_responses_request, _responses_answer),
}


async def _load(url: str, requests: int, model: str, endpoint: str = "chat completions") -> dict[str, Any]:
    import aiohttp

    build, answer = ENDPOINTS[endpoint]
    questions = [q.text for q in generate_questions(requests, seed=13)]
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(question: str) -> None:
            path, body = build(model, question)
            try:
                async with session.post(url + path, json=body) as response:
                    statuses[response.status] += 1
                    if body.get("stream") and response.status == 200:
                        payload = _completed_response(await response.text())
                    else:
                        payload = await response.json()
                    if response.status != 200:
                        failures.append(str(payload)[:200])
                    elif not answer(payload):
                        failures.append("empty answer")
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for question in questions:
                tg.start_soon(one, question)
        wall = time.perf_counter() - started
    return {"wall_s": wall, "statuses": dict(statuses), "failures": failures}


async def _proxy(server: FakeServerProcess, requests: int, latency: float) -> dict[str, dict[str, Any]]:
    port = _free_port()
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measurement
        [sys.executable, "-m", "benchmarks._serve", "--upstream", server.base_url, "--port", str(port)],
        cwd=ROOT,
        env=child_env(),
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            await _wait_healthy(url, process)
        except RuntimeError as exc:
            stderr = process.stderr.read().decode()[-1500:] if process.stderr else ""
            raise RuntimeError(f"{exc}: {stderr}") from None
        for endpoint in ENDPOINTS:  # the first requests' one-time work (imports, caches) on each endpoint
            await _load(url, 2, "moa-fake-model", endpoint)
        rounds: dict[str, dict[str, Any]] = {}
        # The cold round opens the proxy's upstream connections during the burst; the warm rounds
        # find them pooled, as a proxy that has been serving does. Both endpoints run the same MoA.
        for label, endpoint in ROUNDS:
            server.reset(latency=latency, p=1.0)
            cpu = _cpu_seconds(process.pid)
            result = await _load(url, requests, "moa-fake-model", endpoint)
            log = server.log()
            after = _cpu_seconds(process.pid)
            result.update(
                proxy_cpu_s=after - cpu if after is not None and cpu is not None else None,
                fake_server_cpu_s=log.cpu_s,
                upstream_calls=log.calls,
                upstream_depth=log.depth(),
                upstream_peak_in_flight=log.max_in_flight,
                proxy_peak_rss_mb=_peak_rss_mb(process.pid),
            )
            rounds[f"{endpoint}, {label}"] = result | {"endpoint": endpoint, "connections": label}
        return rounds
    finally:
        process.terminate()
        wait_or_kill(process)
        if process.stderr is not None:
            process.stderr.close()


def _proxy_row(proxy: Table, section: Section, label: str, requests: int, outcome: dict[str, Any]) -> None:
    wall = outcome["wall_s"]
    ok = wall < TARGET_PROXY_S and not outcome["failures"]
    proxy.add(
        ENDPOINT_PATHS[outcome["endpoint"]],
        outcome["connections"],
        requests,
        round(wall, 3),
        f"< {TARGET_PROXY_S:.0f} s " + ("✅" if ok else "❌"),
        "8.0 s" if outcome["endpoint"] == "chat completions" else "no such endpoint",
        ", ".join(f"{k}: {v}" for k, v in sorted(outcome["statuses"].items())),
        len(outcome["failures"]),
        outcome["upstream_calls"],
        outcome["upstream_peak_in_flight"],
        round(outcome["proxy_cpu_s"], 2) if outcome["proxy_cpu_s"] is not None else None,
        round(outcome["proxy_peak_rss_mb"]) if outcome["proxy_peak_rss_mb"] else None,
    )
    if outcome["failures"]:
        section.notes.append(f"First proxy failure ({label} round): {outcome['failures'][0]}")
    section.notes.append(
        f"Proxy {label} round: the fake upstream process used {outcome['fake_server_cpu_s']:.2f} s of CPU, the "
        "proxy process the CPU in the table; the load generator runs in the harness process and opens a new "
        "connection per request in every round."
    )


async def run(options: Options) -> Section:
    runs = 10 if options.smoke else 1000
    requests = 5 if options.smoke else 200
    latency = 0.01 if options.smoke else 0.1
    section = Section(NAME, TITLE, options.command(NAME), smoke=options.smoke)
    moa = Table(
        f"{runs} concurrent MoA runs in one process (router → fake server at {latency * 1000:.0f} ms per call)",
        [
            "round",
            "runs",
            "LLM calls",
            "wall (s)",
            "ideal (3 × latency, s)",
            "client CPU (s)",
            "errors",
            "RSS before (MB)",
            "peak RSS (MB)",
        ],
    )
    proxy = Table(
        f"{requests} concurrent `moa-fake-model` requests through the proxy (fake upstream at "
        f"{latency * 1000:.0f} ms per call)",
        [
            "endpoint",
            "upstream connections",
            "requests",
            "wall (s)",
            "target",
            "upstream optillm 0.4.0",
            "HTTP statuses",
            "failures",
            "upstream calls",
            "upstream peak in flight",
            "proxy CPU (s)",
            "proxy peak RSS (MB)",
        ],
    )
    with fake_server_process(latency=latency, p=1.0) as server:
        server.reset(latency=latency, p=1.0)
        args = ("--base-url", server.base_url, "--runs", str(runs))
        moa_runs = await anyio.to_thread.run_sync(partial(run_child, "moa-scale", *args))
        moa_runs["fake_server_cpu_s"] = server.log().cpu_s
        section.data["moa_runs"] = moa_runs
        for label, round_ in moa_runs["rounds"].items():
            moa.add(
                f"{label} connections",
                runs,
                round_["llm_calls"],
                round(round_["wall_s"], 3),
                round(3 * latency, 3),
                round(round_["client_cpu_s"], 2),
                round_["errors"],
                round(moa_runs["rss_before_mb"]),
                round(moa_runs["peak_rss_mb"]),
            )
            if round_["errors"]:
                section.notes.append(f"MoA {label} errors: {round_['error_types']}: {round_['error_example']}")
        outcome = await _proxy(server, requests, latency)
        section.data["proxy"] = outcome
        for label, result in outcome.items():
            _proxy_row(proxy, section, label, requests, result)
    section.notes.append(
        f"MoA runs: the fake server process used {moa_runs['fake_server_cpu_s']:.2f} s of CPU "
        "for both rounds and the warm-up call together; on 2 cores the client and the server share the "
        "machine, so wall time is bounded below by their CPU time."
    )
    section.tables += [moa, proxy]
    section.notes += [
        "MoA runs: a fresh Python process runs every MoA run at once (`every_outcome`) through one router; peak RSS "
        "is that process's `ru_maxrss` (before: after imports and one warm-up call). The fake server (oracle, "
        "p = 1) runs in another process. The cold round opens its connections while it runs; the warm round "
        "reuses them.",
        "Proxy: optillm_server's app under uvicorn in its own process, the fake upstream in another, and an aiohttp "
        "load generator in the harness process sending every request at once; peak RSS is the proxy's VmHWM.",
        "The `/v1/responses` round is streamed, as Codex CLI sends every request: each answer is an event stream "
        "(created, in_progress, one in_progress per MoA progress step, the item's added/done events and one delta "
        "per streamed piece of the synthesis, completed with the whole response), read whole by the load generator; "
        "the chat and Messages rounds are plain JSON answers. Its extra proxy CPU is that of streaming.",
    ]
    return section
