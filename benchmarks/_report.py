"""Section results: tables with their command, machine and date, written as markdown and JSON."""

from __future__ import annotations as _annotations

import json
import os
import platform
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ("Machine", "Section", "Table", "machine", "read_section", "update_docs", "write_section")

Cell = str | int | float | None


@dataclass
class Table:
    """One markdown table: a title, column headers and rows of cells."""

    title: str
    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)

    def add(self, *cells: Cell) -> None:
        if len(cells) != len(self.headers):
            raise ValueError(f"table '{self.title}' has {len(self.headers)} columns, got {len(cells)} cells")
        self.rows.append(list(cells))

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.headers) + " |"]
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in self.rows)
        return "\n".join(lines)


@dataclass(frozen=True)
class Machine:
    cpus: int
    arch: str
    python: str
    system: str
    load: float

    def describe(self) -> str:
        return (
            f"{self.cpus} CPU cores, {self.arch}, {self.system}, CPython {self.python}; "
            f"1-minute load average {self.load:.1f} when the section started"
        )


def machine() -> Machine:
    return Machine(
        cpus=os.cpu_count() or 0,
        arch=platform.machine(),
        python=platform.python_version(),
        system=platform.system(),
        load=os.getloadavg()[0],
    )


@dataclass
class Section:
    """The result of one benchmark section."""

    name: str
    title: str
    command: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    smoke: bool = False
    date: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    machine: Machine = field(default_factory=machine)

    def markdown(self) -> str:
        parts = [
            f"Command: `{self.command}`" + (" (smoke mode: tiny sizes, not representative)" if self.smoke else ""),
            f"Machine: {self.machine.describe()}. Date: {self.date}.",
        ]
        parts.extend(table.markdown() for table in self.tables)
        if self.notes:
            parts.append("\n".join(f"- {note}" for note in self.notes))
        return "\n\n".join(parts)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Section:
        """A section read back from :meth:`to_json`'s output."""
        return cls(
            name=data["name"],
            title=data["title"],
            command=data["command"],
            tables=[Table(**t) for t in data["tables"]],
            notes=list(data["notes"]),
            data=dict(data["data"]),
            smoke=bool(data["smoke"]),
            date=data["date"],
            machine=Machine(**data["machine"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "command": self.command,
            "smoke": self.smoke,
            "date": self.date,
            "machine": asdict(self.machine),
            "tables": [asdict(t) for t in self.tables],
            "notes": self.notes,
            "data": self.data,
        }


def _cell(value: Cell) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value).replace("|", "\\|")


def read_section(path: Path) -> Section:
    """A section from its ``<name>.json`` under the results folder."""
    loaded: dict[str, Any] = json.loads(path.read_text())
    return Section.from_json(loaded)


def write_section(section: Section, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<name>.md`` and ``<name>.json`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{section.name}.md"
    md.write_text(f"## {section.title}\n\n{section.markdown()}\n")
    js = out_dir / f"{section.name}.json"
    js.write_text(json.dumps(section.to_json(), indent=2, default=str) + "\n")
    return md, js


def _splicer(body: str) -> Callable[[re.Match[str]], str]:
    def splice(match: re.Match[str]) -> str:
        return match.group(1) + body + match.group(2)

    return splice


def update_docs(doc: Path, sections: list[Section]) -> None:
    """Replace each section's block between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``."""
    text = doc.read_text()
    for section in sections:
        pattern = re.compile(
            rf"(<!-- results:{re.escape(section.name)} -->\n).*?(\n<!-- /results:{re.escape(section.name)} -->)",
            re.DOTALL,
        )
        if not pattern.search(text):
            print(f"warning: {doc} has no results block for '{section.name}'", file=sys.stderr)
            continue
        text = pattern.sub(_splicer(section.markdown()), text)
    doc.write_text(text)
