"""Section 8: how long an import or a quick command takes in a fresh interpreter, as a ratio to ``import pydantic``.

Every command runs in a new process of this interpreter, round-robin (one of each, then the next
round), so that the machine's drift touches every row alike; each row keeps its fastest run. The
ratios divide by the fastest ``import pydantic`` of the same run. One more run of each command with
``-X importtime`` lists which of the heavy modules it loaded.

A strategy package is held to core within one process: ``import optillm_core; import PACKAGE``
under ``-X importtime`` times core's import and then what the package adds to it. Comparing the
fastest package run with the fastest core run, two different processes, swung by ±10 % on this VM
between runs of the section (MoA, which adds about 8 ms, read 15 % over core in one run),
which is the whole margin.
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
class ImportTimes:
    """One ``python -X importtime`` run: each module's own and cumulative microseconds."""

    own_us: dict[str, int]
    cumulative_us: dict[str, int]

    @classmethod
    def parse(cls, stderr: str) -> ImportTimes:
        own: dict[str, int] = {}
        cumulative: dict[str, int] = {}
        for line in stderr.splitlines():
            parts = line.removeprefix("import time:").split("|")
            if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
                name = parts[2].strip()
                own[name], cumulative[name] = int(parts[0]), int(parts[1])
        return cls(own, cumulative)

    def added_to(self, base: str, module: str) -> float | None:
        """What importing ``module`` after ``base`` added, as a share of ``base``'s import, in this one run.

        Not the own times of the modules ``base`` does not load: a module that reads a lazy attribute of
        pydantic first is charged for loading it (``importlib.import_module`` is not itemised)."""
        base_us, added_us = self.cumulative_us.get(base), self.cumulative_us.get(module)
        return added_us / base_us if base_us and added_us is not None else None


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
    Command("import optillm_mars", "import optillm_mars", of_core=True, smoke=True),
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


def _importtime(code: str, env: dict[str, str]) -> ImportTimes:
    """``code`` run once under ``python -X importtime``: every module it imported, with its times."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return ImportTimes.parse(done.stderr)


def _measure(
    commands: tuple[Command, ...], repeats: int, *, compiled: bool
) -> tuple[dict[str, dict[str, Any]], list[float]]:
    """Each command's wall times, import times (and a package's share over core) and heavy modules,
    and the load average around each round."""
    with tempfile.TemporaryDirectory(prefix="optillm-startup-") as cache:
        env = _env(cache, compiled=compiled)
        first = {c.label: _importtime(c.code, env) for c in commands}  # also compiles the bytecode
        walls: dict[str, list[float]] = {c.label: [] for c in commands}
        imports: dict[str, list[int]] = {c.label: [] for c in commands}
        over_core: dict[str, list[float]] = {c.label: [] for c in commands}
        loads = [os.getloadavg()[0]]
        for _ in range(repeats):
            for command in commands:
                walls[command.label].append(_wall(command.code, env))
                if command.module is not None:
                    times = _importtime(command.code, env)
                    imports[command.label].append(times.cumulative_us.get(command.module, 0))
                if command.of_core and command.module is not None and CORE.module is not None:
                    after_core = _importtime(f"{CORE.code}; {command.code}", env)
                    share = after_core.added_to(CORE.module, command.module)
                    if share is not None:
                        over_core[command.label].append(share)
            loads.append(os.getloadavg()[0])
    results = {
        c.label: {
            "walls_s": walls[c.label],
            "import_us": imports[c.label],
            "over_core": over_core[c.label],
            "loaded": [m for m in HEAVY if m in first[c.label].own_us],
        }
        for c in commands
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
            "over core, same process (median)",
            "target",
            "heavy modules loaded",
        ],
    )
    wall_unit = min(results[PYDANTIC.label]["walls_s"])
    import_unit = min(results[PYDANTIC.label]["import_us"])
    for command in commands:
        walls, imports, shares = (results[command.label][key] for key in ("walls_s", "import_us", "over_core"))
        ratio = min(walls) / wall_unit
        import_ratio = min(imports) / import_unit if imports else None
        over_core = statistics.median(shares) if shares else None
        limit = command.target
        target = f"≤ {command.target:g}" if command.target is not None else None
        if command.of_core:
            target = f"≤ core + {CORE_MARGIN - 1:.0%}"
        data[command.label] = {
            **results[command.label],
            "ratio": ratio,
            "import_ratio": import_ratio,
            "over_core_median": over_core,
            "limit": limit,
        }
        over_cell = None
        if over_core is not None:
            met = over_core <= CORE_MARGIN - 1
            over_cell = f"+{over_core:.1%}" + (" ✅" if met else " ❌")
        elif command.of_core:
            over_cell = "not measured ❌"
        table.add(
            command.label,
            round(min(walls) * 1000, 1),
            round(statistics.median(walls) * 1000, 1),
            _ratio_cell(ratio, limit),
            round(min(imports) / 1000, 1) if imports else None,
            _ratio_cell(import_ratio, limit),
            over_cell,
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
        "exit, and less disturbed by other processes than wall time. A ratio target is met when its ratio is, in "
        "the column that shows it (✅/❌ on each).",
        "Over core, same process: `python -X importtime -c 'import optillm_core; import PACKAGE'` once more in "
        "each round, the package's import (core already loaded) over core's in that same process; the median of "
        "the runs, judged against core + 10 %. Until 2026-12-06 a package was judged by its fastest run over "
        "core's fastest run, two processes apart, which swung by ±10 % on this VM from one run of the section "
        "to the next: the whole margin.",
        "Heavy modules loaded: which of " + ", ".join(f"`{m}`" for m in HEAVY) + " one more run of the command "
        "imported, from `python -X importtime`.",
        "Compiled: bytecode written to a temporary `PYTHONPYCACHEPREFIX` by a first, unmeasured run; from "
        "source: `PYTHONDONTWRITEBYTECODE=1` and an empty cache, so every run compiles every module it imports "
        "(as in a checkout whose environment forbids writing bytecode).",
        f"1-minute load average over the measurements: {min(loads):.1f}–{max(loads):.1f}.",
    ]
    return section
