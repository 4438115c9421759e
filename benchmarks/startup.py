"""Section 8: how long an import or a quick command takes in a fresh interpreter, as a ratio to ``import pydantic``.

Every command runs in a new process of this interpreter, round-robin (one of each, then the next
round), so that the machine's drift touches every row alike; each row keeps its fastest run. The
ratios divide by the fastest ``import pydantic`` of the same run. One more run of each command with
``-X importtime`` lists which of the heavy modules it loaded.
"""

from __future__ import annotations as _annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio

from benchmarks._options import Options
from benchmarks._procs import ROOT, child_env
from benchmarks._report import Section, Table

__all__ = ("COMMANDS", "HEAVY", "Command", "run")

NAME = "startup"
TITLE = "8. Startup"
REPEATS = 15
SMOKE_REPEATS = 1
HEAVY = (
    "structlog",
    "importlib.metadata",
    "asyncio",
    "aiohttp",
    "httpx",
    "yaml",
    "llama_cpp",
    "starlette",
    "uvicorn",
)
"""Modules whose loading the table reports: each costs tens of milliseconds or more to import."""
CORE_MARGIN = 1.10
"""A strategy package may take at most this much longer to import than core."""


@dataclass(frozen=True)
class Command:
    """One measured command: its label, the Python code it runs, and its target as a ratio to ``import pydantic``."""

    label: str
    code: str
    target: float | None = None
    """At most this many times ``import pydantic``; ``None``: no target of its own."""
    of_core: bool = False
    """The target is core's time plus 10 % instead."""
    smoke: bool = False


def _cli(*argv: str) -> str:
    return f"import sys; from optillm_cli import main; sys.exit(main({list(argv)!r}))"


COMMANDS = (
    Command("python -c pass (the interpreter alone)", "pass", smoke=True),
    Command("import pydantic (the unit)", "import pydantic", smoke=True),
    Command("import optillm_core", "import optillm_core", target=3.0, smoke=True),
    Command("import optillm_moa", "import optillm_moa", of_core=True),
    Command("import optillm_mcts", "import optillm_mcts", of_core=True),
    Command("import optillm_mars", "import optillm_mars", of_core=True),
    Command("import optillm_sampling", "import optillm_sampling", of_core=True),
    Command("import optillm_router", "import optillm_router", target=4.0),
    Command("import optillm_server", "import optillm_server"),
    Command("optillm --help", _cli("--help"), target=2.5, smoke=True),
    Command("optillm strategies", _cli("strategies"), target=2.5),
)
PYDANTIC = COMMANDS[1]
CORE = COMMANDS[2]


def _env(cache: str, *, compiled: bool) -> dict[str, str]:
    """The child environment: bytecode cached under ``cache`` (compiled) or compiled anew on every import."""
    env = child_env()
    env["PYTHONPYCACHEPREFIX"] = cache
    if compiled:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _wall(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    return time.perf_counter() - started


def _loaded(code: str, env: dict[str, str]) -> list[str]:
    """Which of :data:`HEAVY` the command imports, read from ``-X importtime``'s list of every module imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return [module for module in HEAVY if module in names]


def _measure(
    commands: tuple[Command, ...], repeats: int, *, compiled: bool
) -> tuple[dict[str, dict[str, Any]], list[float]]:
    """Each command's wall times and heavy modules, and the load average before and after each round."""
    with tempfile.TemporaryDirectory(prefix="optillm-startup-") as cache:
        env = _env(cache, compiled=compiled)
        loaded = {c.label: _loaded(c.code, env) for c in commands}  # also compiles the bytecode when it is kept
        walls: dict[str, list[float]] = {c.label: [] for c in commands}
        loads = [os.getloadavg()[0]]
        for _ in range(repeats):
            for command in commands:
                walls[command.label].append(_wall(command.code, env))
            loads.append(os.getloadavg()[0])
    return {c.label: {"walls_s": walls[c.label], "loaded": loaded[c.label]} for c in commands}, loads


def _table(
    title: str, commands: tuple[Command, ...], results: dict[str, dict[str, Any]], data: dict[str, Any]
) -> Table:
    table = Table(
        title,
        [
            "command",
            "best (ms)",
            "median (ms)",
            "× import pydantic",
            "target",
            "heavy modules loaded",
        ],
    )
    unit = min(results[PYDANTIC.label]["walls_s"])
    core = min(results[CORE.label]["walls_s"]) / unit if CORE.label in results else None
    for command in commands:
        walls = results[command.label]["walls_s"]
        ratio = min(walls) / unit
        limit = core * CORE_MARGIN if command.of_core and core is not None else command.target
        if limit is None:
            target = None
        else:
            label = f"core + 10 % ({limit:.2f})" if command.of_core else f"{limit:g}"
            target = f"≤ {label} " + ("✅" if ratio <= limit else "❌")
        data[command.label] = {**results[command.label], "ratio": ratio, "limit": limit}
        table.add(
            command.label,
            round(min(walls) * 1000, 1),
            round(statistics.median(walls) * 1000, 1),
            round(ratio, 2),
            target,
            ", ".join(results[command.label]["loaded"]) or "none",
        )
    return table


async def run(options: Options) -> Section:
    commands = tuple(c for c in COMMANDS if c.smoke) if options.smoke else COMMANDS
    repeats = SMOKE_REPEATS if options.smoke else REPEATS
    section = Section(NAME, TITLE, options.command(NAME), smoke=options.smoke)
    modes = (True,) if options.smoke else (True, False)
    loads: list[float] = []
    for compiled in modes:
        results, mode_loads = await anyio.to_thread.run_sync(partial(_measure, commands, repeats, compiled=compiled))
        mode = "compiled" if compiled else "from source"
        data: dict[str, Any] = {}
        title = (
            "Fresh interpreter, bytecode compiled (as installed packages run)"
            if compiled
            else "Fresh interpreter, every module compiled from source (PYTHONDONTWRITEBYTECODE=1, no cache)"
        )
        section.tables.append(_table(title, commands, results, data))
        section.data[mode] = data
        loads += mode_loads
    section.notes += [
        f"Each command runs {repeats} times in a new `{os.path.basename(sys.executable)}` process "
        "(the workspace venv), round-robin over the commands; the table shows the fastest and the median run, "
        "wall-clock from starting the process to its exit. Ratios divide the fastest run by the fastest "
        "`import pydantic` of the same table.",
        "`optillm --help` and `optillm strategies` run the console script's code "
        "(`from optillm_cli import main; main([...])`) with their output discarded.",
        "Heavy modules loaded: which of " + ", ".join(f"`{m}`" for m in HEAVY) + " one more run of the command "
        "imported, from `python -X importtime`.",
        "Compiled: bytecode written to a temporary `PYTHONPYCACHEPREFIX` by a first, unmeasured run; from "
        "source: `PYTHONDONTWRITEBYTECODE=1` and an empty cache, so every run compiles every module it imports "
        "(as in a checkout whose environment forbids writing bytecode).",
        f"1-minute load average over the measurements: {min(loads):.1f}–{max(loads):.1f}.",
    ]
    return section
