"""The command line: run sections, write their results, optionally update docs/benchmarks.md."""

from __future__ import annotations as _annotations

import argparse
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import anyio

from benchmarks import cost, critical_path, faults, overhead, quality, real_model, scale, startup
from benchmarks._logs import quiet_logs
from benchmarks._options import Options
from benchmarks._procs import ROOT
from benchmarks._report import Section, read_section, update_docs, write_section

__all__ = ("SECTIONS", "main", "run_sections")

SectionRunner = Callable[[Options], Awaitable[Section]]

SECTIONS: dict[str, tuple[str, SectionRunner]] = {
    module.NAME: (module.TITLE, module.run)
    for module in (critical_path, overhead, scale, cost, quality, real_model, faults, startup)
}
DOC = ROOT / "docs" / "benchmarks.md"


async def _run_one(name: str, options: Options) -> Section:
    title, runner = SECTIONS[name]
    print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
    try:
        return await runner(options)
    except Exception as exc:
        traceback.print_exc()
        section = Section(name, title, options.command(name), smoke=options.smoke)
        section.notes.append(f"Failed: {type(exc).__name__}: {exc}")
        section.data["failed"] = f"{type(exc).__name__}: {exc}"
        return section


async def run_sections(names: Sequence[str], options: Options) -> list[Section]:
    """Run the named sections in order, writing each one's markdown and JSON under ``options.out``."""
    sections = []
    for name in names:
        section = await _run_one(name, options)
        write_section(section, options.out)
        print(section.markdown(), "\n", file=sys.stderr, flush=True)
        sections.append(section)
    return sections


def _parse(argv: Sequence[str] | None) -> tuple[list[str], Options, bool, bool]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("sections", nargs="+", choices=["all", *SECTIONS], help="what to run ('all' for everything)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the harness itself")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="where results go")
    parser.add_argument("--questions", type=int, help="questions for the quality section (default 500)")
    parser.add_argument("--real-questions", type=int, help="questions for the real-model section (default 50)")
    parser.add_argument(
        "--real-seconds", type=float, help="time per strategy in the real-model section (default: no limit)"
    )
    parser.add_argument("--write-docs", action="store_true", help=f"copy the tables into {DOC.relative_to(ROOT)}")
    parser.add_argument(
        "--docs-from-results",
        action="store_true",
        help="run nothing: copy the named sections' stored results (from --out) into the docs",
    )
    args = parser.parse_args(argv)
    names = list(SECTIONS) if "all" in args.sections else list(dict.fromkeys(args.sections))
    flags: list[str] = []
    if args.smoke:
        flags.append("--smoke")
    if args.questions:
        flags += ["--questions", str(args.questions)]
    if args.real_questions:
        flags += ["--real-questions", str(args.real_questions)]
    if args.real_seconds:
        flags += ["--real-seconds", f"{args.real_seconds:g}"]
    options = Options(
        smoke=args.smoke,
        out=args.out,
        flags=tuple(flags),
        questions=args.questions,
        real_questions=args.real_questions,
        real_seconds=args.real_seconds,
    )
    return names, options, args.write_docs, args.docs_from_results


def main(argv: Sequence[str] | None = None) -> None:
    names, options, write_docs, from_results = _parse(argv)
    quiet_logs()
    if from_results:
        stored = [options.out / f"{name}.json" for name in names]
        update_docs(DOC, [read_section(path) for path in stored if path.exists()])
        return
    sections = anyio.run(run_sections, names, options)
    if write_docs:
        update_docs(DOC, sections)
    failed = [s.name for s in sections if "failed" in s.data]
    if failed:
        raise SystemExit(f"sections failed: {', '.join(failed)}")
