"""The fake OpenAI server in a process of its own, so that its CPU never counts against the client.

Run as ``python -m benchmarks._fakeproc``; :class:`FakeServerProcess` starts it and talks to its
control port (request log, reset, settings).
"""

from __future__ import annotations as _annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from benchmarks._logs import quiet_logs
from benchmarks._procs import ROOT, child_env, wait_or_kill

__all__ = ("FakeServerProcess", "ServerLog", "fake_server_process")


@dataclass(frozen=True)
class ServerLog:
    """What the fake server saw: (start, end) of every chat request, the ``n`` of each, peak concurrency."""

    intervals: list[tuple[float, float]]
    ns: list[int]
    statuses: list[int]
    max_in_flight: int
    kinds: dict[str, int]
    cpu_s: float
    bodies: list[dict[str, Any]] = field(default_factory=list)
    """The chat requests' bodies, in arrival order (only when the log was asked for them)."""

    @property
    def calls(self) -> int:
        return len(self.intervals)

    @property
    def errors(self) -> int:
        return sum(1 for s in self.statuses if s >= 400)

    def depth(self) -> int:
        from optillm_core.testing import sequential_depth

        return sequential_depth(self.intervals)


class FakeServerProcess:
    """A handle on a fake server running in a child process."""

    def __init__(self, process: subprocess.Popen[str], base_url: str, control_url: str) -> None:
        self.process = process
        self.base_url = base_url
        self.control_url = control_url

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.control_url + path, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            result: dict[str, Any] = json.loads(response.read())
        return result

    def reset(self, **settings: Any) -> None:
        """Clear the log and the oracle's draws; optionally change ``latency``, ``native_n``, ``p``, ``seed``."""
        self._post("/reset", settings)

    def log(self, *, bodies: bool = False) -> ServerLog:
        data = self._post("/log", {"bodies": bodies})
        return ServerLog(
            intervals=[(s, e) for s, e in data["intervals"]],
            ns=data["ns"],
            statuses=data["statuses"],
            max_in_flight=data["max_in_flight"],
            kinds=data["kinds"],
            cpu_s=data["cpu_s"],
            bodies=data.get("bodies", []),
        )


@contextmanager
def fake_server_process(
    *, latency: float = 0.0, native_n: bool = True, p: float | None = None, seed: int = 0
) -> Iterator[FakeServerProcess]:
    """Start the fake server in a child process; stop it on exit."""
    args = [sys.executable, "-m", "benchmarks._fakeproc", "--latency", str(latency), "--seed", str(seed)]
    if not native_n:
        args.append("--no-native-n")
    if p is not None:
        args += ["--oracle-p", str(p)]
    process = subprocess.Popen(
        args, cwd=ROOT, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the fake server process exited with {process.wait()} before it started")
        info = json.loads(line)
        yield FakeServerProcess(process, info["base_url"], info["control_url"])
    finally:
        if process.stdin is not None:
            process.stdin.close()
        wait_or_kill(process)
        if process.stdout is not None:
            process.stdout.close()


# -- the child process ------------------------------------------------------------------------------


def _serve(options: argparse.Namespace) -> None:
    quiet_logs()
    import anyio
    from aiohttp import web

    from benchmarks._oracle import Oracle
    from optillm_router.testing import FakeOpenAIServer, FakeReply

    oracle = Oracle(p=options.oracle_p if options.oracle_p is not None else 1.0, seed=options.seed)
    use_oracle = options.oracle_p is not None

    def reply(body: dict[str, Any], choice: int) -> str | FakeReply:
        messages = [(str(m.get("role")), str(m.get("content", ""))) for m in body.get("messages", [])]
        if not use_oracle:
            return "A short reply. The answer is \\boxed{42}."
        return oracle.reply(messages)

    server = FakeOpenAIServer(reply=reply, latency=options.latency, native_n=not options.no_native_n)
    cpu_at_reset = time.process_time()

    async def log(request: web.Request) -> web.Response:
        chats = server.chat_requests
        wanted = await request.json()
        return web.json_response(
            {
                "bodies": [r.body for r in chats if r.ended_at is not None] if wanted.get("bodies") else [],
                "intervals": [[r.started_at, r.ended_at] for r in chats if r.ended_at is not None],
                "ns": [int(r.body.get("n") or 1) for r in chats if r.ended_at is not None],
                "statuses": [r.status for r in chats if r.ended_at is not None],
                "max_in_flight": server.max_in_flight,
                "kinds": dict(oracle.kinds),
                "cpu_s": time.process_time() - cpu_at_reset,
            }
        )

    async def reset(request: web.Request) -> web.Response:
        nonlocal use_oracle, cpu_at_reset
        settings = await request.json()
        cpu_at_reset = time.process_time()
        server.requests.clear()
        server.max_in_flight = server.in_flight
        oracle.reset()
        if "latency" in settings:
            server.latency = float(settings["latency"])
        if "native_n" in settings:
            server.native_n = bool(settings["native_n"])
        if "p" in settings:
            use_oracle = settings["p"] is not None
            oracle.p = float(settings["p"]) if use_oracle else 1.0
        if "seed" in settings:
            oracle.seed = int(settings["seed"])
        return web.json_response({"ok": True})

    async def main() -> None:
        await server.start()
        control = web.Application()
        control.router.add_post("/log", log)
        control.router.add_post("/reset", reset)
        runner = web.AppRunner(control, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(json.dumps({"base_url": server.base_url, "control_url": f"http://127.0.0.1:{port}"}), flush=True)
        stdin_closed = anyio.Event()
        token = anyio.lowlevel.current_token()

        def watch_stdin() -> None:
            sys.stdin.read()
            anyio.from_thread.run_sync(stdin_closed.set, token=token)

        threading.Thread(target=watch_stdin, daemon=True).start()
        await stdin_closed.wait()
        await runner.cleanup()
        await server.stop()

    anyio.run(main)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="fake OpenAI server for the benchmarks")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--no-native-n", action="store_true")
    parser.add_argument("--oracle-p", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    _serve(parser.parse_args())
