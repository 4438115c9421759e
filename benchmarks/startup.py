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

    @property
    def module(self) -> str | None:
        """The module an import row imports (its ``-X importtime`` total is reported too)."""
        name = self.code.removeprefix("import ")
        return name if name != self.code and name.isidentifier() else None


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
    Command("optillm strategies (listing cached)", _cli("strategies"), target=2.5),
    Command(
        "optillm strategies (cache off: built)",
        "import os; os.environ['OPTILLM_CACHE_DIR'] = ''; " + _cli("strategies"),
    ),
)
PYDANTIC = COMMANDS[1]
CORE = COMMANDS[2]


def _env(cache: str, *, compiled: bool) -> dict[str, str]:
    """The child environment: bytecode cached under ``cache`` (compiled) or compiled anew on every import."""
    env = child_env()
    env["PYTHONPYCACHEPREFIX"] = cache
    env["OPTILLM_CACHE_DIR"] = os.path.join(cache, "listing")  # the first, unmeasured run builds the listing
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


def _importtime(code: str, env: dict[str, str], module: str | None) -> tuple[list[str], int | None]:
    """Which of :data:`HEAVY` the command imports (from ``-X importtime``'s list of every module imported),
    and the cumulative microseconds of importing ``module``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    names: dict[str, int] = {}
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            names[parts[2].strip()] = int(parts[1])
    return [m for m in HEAVY if m in names], names.get(module) if module is not None else None


def _measure(
    commands: tuple[Command, ...], repeats: int, *, compiled: bool
) -> tuple[dict[str, dict[str, Any]], list[float]]:
    """Each command's wall times, import times and heavy modules, and the load average around each round."""
    with tempfile.TemporaryDirectory(prefix="optillm-startup-") as cache:
        env = _env(cache, compiled=compiled)
        loaded = {c.label: _importtime(c.code, env, None)[0] for c in commands}  # also compiles the bytecode
        walls: dict[str, list[float]] = {c.label: [] for c in commands}
        imports: dict[str, list[int]] = {c.label: [] for c in commands}
        loads = [os.getloadavg()[0]]
        for _ in range(repeats):
            for command in commands:
                walls[command.label].append(_wall(command.code, env))
                if command.module is not None:
                    imports[command.label].append(_importtime(command.code, env, command.module)[1] or 0)
            loads.append(os.getloadavg()[0])
    results = {
        c.label: {"walls_s": walls[c.label], "import_us": imports[c.label], "loaded": loaded[c.label]} for c in commands
    }
    return results, loads


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
            "import time (ms)",
            "import time × pydantic",
            "target",
            "heavy modules loaded",
        ],
    )
    wall_unit = min(results[PYDANTIC.label]["walls_s"])
    import_unit = min(results[PYDANTIC.label]["import_us"])
    core_wall = min(results[CORE.label]["walls_s"]) / wall_unit if CORE.label in results else None
    core_import = min(results[CORE.label]["import_us"]) / import_unit if CORE.label in results else None
    for command in commands:
        walls, imports = results[command.label]["walls_s"], results[command.label]["import_us"]
        ratio = min(walls) / wall_unit
        import_ratio = min(imports) / import_unit if imports else None
        limits: tuple[float, float] | None = None
        target: str | None = None
        if command.of_core and core_wall is not None and core_import is not None:
            wall_limit, import_limit = core_wall * CORE_MARGIN, core_import * CORE_MARGIN
            limits, target = (wall_limit, import_limit), f"≤ core + 10 % ({wall_limit:.2f} / {import_limit:.2f})"
        elif command.target is not None:
            limits, target = (command.target, command.target), f"≤ {command.target:g}"
        data[command.label] = {**results[command.label], "ratio": ratio, "import_ratio": import_ratio, "limits": limits}
        table.add(
            command.label,
            round(min(walls) * 1000, 1),
            round(statistics.median(walls) * 1000, 1),
            _ratio_cell(ratio, limits[0] if limits else None),
            round(min(imports) / 1000, 1) if imports else None,
            _ratio_cell(import_ratio, limits[1] if limits else None),
            target,
            ", ".join(results[command.label]["loaded"]) or "none",
        )
    return table


def _ratio_cell(ratio: float | None, limit: float | None) -> str | None:
    if ratio is None:
        return None
    return f"{ratio:.2f}" + ("" if limit is None else (" ✅" if ratio <= limit else " ❌"))


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
        "(`from optillm_cli import main; main([...])`) with their output discarded. `optillm strategies` keeps "
        "its listing in a cache (`OPTILLM_CACHE_DIR`, here a temporary folder the first, unmeasured run fills) "
        "and builds it again only when an installed distribution or a module it was built from changed: the "
        "cached row is what a user sees on every run but the first after an install; the built row turns the "
        "cache off (`OPTILLM_CACHE_DIR=`) and imports every strategy each time.",
        "Import time: the cumulative time of the row's top module in `python -X importtime -c 'import MODULE'` "
        "(best of as many runs, taken in the same rounds): the import alone, without the interpreter's start and "
        "exit, and less disturbed by other processes than wall time. A target is met when its ratio is, in "
        "the column that shows it (✅/❌ on each).",
        "Heavy modules loaded: which of " + ", ".join(f"`{m}`" for m in HEAVY) + " one more run of the command "
        "imported, from `python -X importtime`.",
        "Compiled: bytecode written to a temporary `PYTHONPYCACHEPREFIX` by a first, unmeasured run; from "
        "source: `PYTHONDONTWRITEBYTECODE=1` and an empty cache, so every run compiles every module it imports "
        "(as in a checkout whose environment forbids writing bytecode).",
        f"1-minute load average over the measurements: {min(loads):.1f}–{max(loads):.1f}.",
    ]
    return section
