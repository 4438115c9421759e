"""Every benchmark section in smoke mode: tiny sizes, the output's structure checked, never its timings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks._main import SECTIONS, run_sections
from benchmarks._options import Options
from benchmarks._report import Section, read_section, update_docs
from benchmarks.critical_path import rounds_of
from benchmarks.startup import ImportTimes

pytestmark = pytest.mark.anyio


def _check_structure(section: Section, out: Path) -> None:
    assert read_section(out / f"{section.name}.json").markdown() == section.markdown()
    assert "failed" not in section.data, section.notes
    assert section.smoke
    assert section.command.startswith("uv run python -m benchmarks ")
    assert "--smoke" in section.command
    for table in section.tables:
        assert table.headers
        assert all(len(row) == len(table.headers) for row in table.rows)
    stored = json.loads((out / f"{section.name}.json").read_text())
    assert stored["name"] == section.name
    assert stored["machine"]["cpus"] >= 1
    assert [t["title"] for t in stored["tables"]] == [t.title for t in section.tables]
    markdown = (out / f"{section.name}.md").read_text()
    assert all(t.title in markdown for t in section.tables)


async def _run(name: str, tmp_path: Path) -> Section:
    [section] = await run_sections([name], Options(smoke=True, out=tmp_path, flags=("--smoke",)))
    _check_structure(section, tmp_path)
    return section


async def test_critical_path_measures_the_baseline_through_the_router(tmp_path: Path) -> None:
    section = await _run("critical-path", tmp_path)
    table = section.tables[0]
    rows = [dict(zip(table.headers, row, strict=True)) for row in table.rows if row[0] == "baseline"]
    assert [(row["oracle p"], row["native n"]) for row in rows] == [(1.0, "on"), (1.0, "off"), (0.5, "on")]
    for row in rows:
        assert (row["LLM calls"], row["requests on the wire"], row["sequential depth"]) == (1, 1, 1)
        # the same request again with bare aiohttp: one round-trip of at least the latency
        assert isinstance(row["same requests, bare aiohttp: ratio"], float)
        assert row["same requests, bare aiohttp: ratio"] >= 1.0
        # the difference per round-trip, in milliseconds: far below the 10 ms latency either way
        assert isinstance(row["optillm's part per round-trip (ms)"], float)
        assert abs(row["optillm's part per round-trip (ms)"]) < 10


def test_rounds_of_groups_requests_by_their_round_trip() -> None:
    # Two concurrent requests, then one after both, then one that started before the third ended.
    intervals = [(0.0, 1.0), (0.1, 1.1), (1.2, 2.0), (1.5, 2.5)]
    bodies: list[dict[str, Any]] = [{"id": i} for i in range(4)]
    assert rounds_of(intervals, bodies) == [[{"id": 0}, {"id": 1}], [{"id": 2}, {"id": 3}]]
    # A request that began after only the first ended still follows it: a chain of depth 3.
    intervals = [(0.0, 1.0), (0.1, 3.0), (1.2, 2.0), (2.1, 2.5)]
    assert rounds_of(intervals, bodies) == [[{"id": 0}, {"id": 1}], [{"id": 2}], [{"id": 3}]]


async def test_overhead_reports_each_concurrency_and_the_burst(tmp_path: Path) -> None:
    section = await _run("overhead", tmp_path)
    cpu_rows = [row for row in section.tables[0].rows if row[0] == "router"]
    assert [row[1] for row in cpu_rows] == [1, 16, 128]
    assert [row[1] for row in section.tables[0].rows if str(row[0]).startswith("bare aiohttp")] == [1, 16, 128]
    assert all(isinstance(row[3], float) and row[3] > 0 for row in cpu_rows)
    table = section.tables[0]
    strategy_rows = [dict(zip(table.headers, row, strict=True)) for row in table.rows if "strategy" in str(row[0])]
    assert strategy_rows
    for row in strategy_rows:  # each held to its own requests made with bare aiohttp
        http_ms = row["same requests, bare aiohttp (ms)"]
        assert isinstance(http_ms, float) and http_ms > 0
        assert str(row["target"]).startswith(f"≤ its HTTP + 0.3 ({http_ms + 0.3:.3f})")
    burst = section.tables[1].rows
    assert [(str(row[0]).split()[0], row[1]) for row in burst] == [
        ("bare", "cold pool"),
        ("bare", "warm pool"),
        ("router", "cold pool"),
        ("router", "warm pool"),
    ]
    headers = section.tables[1].headers
    rows = [dict(zip(headers, row, strict=True)) for row in burst]
    assert all(row["errors"] == 0 for row in rows)  # no errors in the burst
    for row in rows[2:]:  # the router's tries, each divided by the floor's try before it
        assert str(row["÷ the floor's try before it"]).count(",") == 4
        assert str(row["target"]).startswith("median ≤ 1.2")


async def test_scale_runs_moa_concurrently(tmp_path: Path) -> None:
    section = await _run("scale", tmp_path)
    rows = section.tables[0].rows
    assert len(rows) == 2
    assert all(row[6] == 0 for row in rows)  # no errors
    proxy = section.tables[1]
    proxy_rows = [dict(zip(proxy.headers, r, strict=True)) for r in proxy.rows]
    assert [(row["endpoint"], row["upstream connections"]) for row in proxy_rows] == [
        ("`/v1/chat/completions`", "cold"),
        ("`/v1/chat/completions`", "warm"),
        ("`/v1/messages`", "warm"),
        ("`/v1/responses` (streamed)", "warm"),
    ]
    assert all(row["failures"] == 0 and row["HTTP statuses"] == "200: 5" for row in proxy_rows)


async def test_cost_reports_import_time_and_size(tmp_path: Path) -> None:
    section = await _run("cost", tmp_path)
    [row] = section.tables[0].rows
    assert row[0] == "optillm-core"
    assert isinstance(row[1], float)
    assert row[1] > 0
    assert isinstance(row[3], float)
    assert row[3] > 0  # MB installed


async def test_quality_scores_every_strategy_at_every_p(tmp_path: Path) -> None:
    section = await _run("quality", tmp_path)
    rows = section.tables[0].rows
    assert {(row[0], row[1]) for row in rows} >= {("baseline", 0.4), ("baseline", 0.6), ("baseline", 0.8)}
    assert all(0 <= float(str(row[2])) <= 1 for row in rows)
    turns = section.tables[1].rows  # tool-call turns: every strategy answers them with a call
    assert {(row[0], row[1]) for row in turns} == {(row[0], row[1]) for row in rows}
    assert all(row[5] == "100%" and row[7] == 0 for row in turns), turns
    assert [row[1] for row in section.tables[2].rows] == [3, 5, 7] * 3


def test_every_section_has_a_results_block_in_the_docs(tmp_path: Path) -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
    text = doc.read_text()
    for name in SECTIONS:
        assert f"<!-- results:{name} -->" in text
        assert f"<!-- /results:{name} -->" in text
    copy = tmp_path / "benchmarks.md"
    copy.write_text(text)
    section = Section("quality", "5. Quality", "uv run python -m benchmarks quality")
    update_docs(copy, [section])
    updated = copy.read_text()
    assert "Command: `uv run python -m benchmarks quality`" in updated
    assert updated.count("<!-- results:quality -->") == 1


async def test_faults_reports_each_path_and_rate_and_every_smoke_run_succeeds(tmp_path: Path) -> None:
    section = await _run("faults", tmp_path)
    table = section.tables[0]
    rows = [dict(zip(table.headers, row, strict=True)) for row in table.rows]
    paths = {"router", "proxy", "proxy, streamed"}
    assert {(row["path"], row["strategy"]) for row in rows} == {
        (path, target) for path in paths for target in ("pass-through", "moa")
    }
    assert {row["fault rate"] for row in rows} == {"0%", "30%"}
    assert all(row["succeeded"] == "1/1" for row in rows), section.notes
    assert all(row["target"] == "100 % ✅" for row in rows)


async def test_startup_times_imports_and_help_against_pydantic(tmp_path: Path) -> None:
    section = await _run("startup", tmp_path)
    [table] = section.tables
    rows = {row[0]: dict(zip(table.headers, row, strict=True)) for row in table.rows}
    assert rows["import pydantic (the unit)"]["× import pydantic"] == "1.00"
    assert rows["import pydantic (the unit)"]["import time × pydantic"] == "1.00"
    assert rows["import optillm_core"]["target"] == "≤ 3"
    assert rows["optillm --help"]["import time (ms)"] is None
    assert all(isinstance(row["best (ms)"], float) and row["best (ms)"] > 0 for row in rows.values())
    assert rows["optillm --help"]["heavy modules loaded"] == "none"
    assert rows["import optillm_mars"]["target"] == "≤ core + 10%"
    assert str(rows["import optillm_mars"]["over core, same process (median)"]).startswith("+")
    assert rows["import optillm_core"]["over core, same process (median)"] is None


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       300 |        300 | site
import time:      1000 |       1000 |   pydantic
import time:       200 |       1200 | optillm_core
import time:        50 |         50 |   optillm_mars._verdicts
import time:       100 |        150 | optillm_mars
"""


def test_a_package_is_held_to_core_within_one_process() -> None:
    times = ImportTimes.parse(IMPORTTIME)
    assert times.cumulative_us["optillm_mars"] == 150
    assert times.own_us["optillm_mars._verdicts"] == 50
    # what the package added after core, over core's own 1200 us in the same process
    assert times.added_to("optillm_core", "optillm_mars") == pytest.approx(0.125)
    assert times.added_to("optillm_core", "optillm_moa") is None
    assert times.added_to("optillm_router", "optillm_mars") is None
