"""The benchmark harness still runs end to end at a tiny size and writes its block of docs/benchmarks.md.

Timings are never asserted (they flake on shared machines): only that every step ran, measured something and
was read, and that the docs generator rewrites its own block and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from bench.harness import plan, report
from kizuna.core.settings import PROJECT_DIR


def outside_block(page: str) -> str:
    return report.BLOCK.sub("", page).removeprefix("# Benchmarks\n").strip()


def test_smoke_run_measures_every_step_and_rewrites_only_its_docs_block(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    original = (PROJECT_DIR / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    docs.write_text(original, encoding="utf-8")
    out, chart = tmp_path / "results.json", tmp_path / "growth.svg"
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--workdir", str(tmp_path / "work"), "--out", str(out),
         "--docs", str(docs), "--chart", str(chart)],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=240, check=False,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads(out.read_text(encoding="utf-8"))
    rows = {(r["size"], r["step"]): r for r in results["steps"]}
    expected = {(None, "import:python itself"), (300, "demo"), (300, "next-day"), *((300, s) for s in plan.SMOKE_STEPS)}
    assert set(rows) == expected
    for key, row in rows.items():
        assert row["ok"], (key, row.get("error"), row.get("details"))
        assert row["seconds"] > 0 and row["peak_mb"] > 0, key
    for step in ("render", "deliver", "events-load"):  # figures read from the other benchmarks' output
        assert rows[(300, step)]["work_seconds"] > 0 and rows[(300, step)]["details"]["per_second"] > 0, step
    assert rows[(300, "ingest")]["details"]["rows"] > 300  # reported from inside the step process
    next_day = json.loads((tmp_path / "work" / "data" / "300-42-2026-11-23-next-day" / ".complete").read_text())
    assert next_day["as_of"] == rows[(300, "next-day")]["details"]["as_of"] > plan.AS_OF.isoformat()
    assert results["machine"]["cores"] and results["machine"]["load_at_end"]

    page = docs.read_text(encoding="utf-8")
    assert page.count("<!-- bench:begin") == 1 and page.count(report.END) == 1
    block = page.split("<!-- bench:begin", 1)[1].split(report.END, 1)[0]
    for name in ("ingest", "render", "deliver, stand-in answers at once", "load events", "demo data"):
        assert f"| {name}" in block, name
    assert "smoke run" in block and "300 customers" in block
    # Everything the other benchmarks wrote is still there, unchanged (the page may have gained its title).
    assert outside_block(page) == outside_block(original)
    assert chart.read_text(encoding="utf-8").lstrip().startswith("<svg")

    report.write_docs(results, docs, chart)  # a second run replaces the block instead of adding one
    assert docs.read_text(encoding="utf-8") == page


def _run_row(size: int, step: str, seconds: float, phases: dict[str, float], ok: bool = True) -> dict[str, object]:
    return {"size": size, "step": step, "group": plan.END_TO_END, "seconds": seconds, "peak_mb": 2048.0,
            "load": 1.0, "ok": ok, "details": {"phases": phases, "flow_seconds": seconds - 10}}  # fmt: skip


def test_day_two_table_sets_incremental_beside_full_refresh_and_judges_the_target() -> None:
    results = {"sizes": [10_000, 1_000_000], "steps": [
        _run_row(10_000, "e2e-day2", 40.0, {"ingest": 5.0, "dbt-build": 20.0}),
        _run_row(10_000, "e2e-day2-full", 50.0, {"ingest": 5.0, "dbt-build": 30.0}),
        _run_row(1_000_000, "e2e-day2", 200.0, {"ingest": 60.0, "quality-gate": 30.0, "dbt-build": 70.0}),
        _run_row(1_000_000, "e2e-day2-full", 400.0, {"ingest": 60.0, "dbt-build": 120.0}),
    ]}  # fmt: skip
    table = "\n".join(report.day_two_table(results))
    assert "| 10,000 | 40.0 s · 2.0 GB | 50.0 s · 2.0 GB | 20% | dbt build 20.0 s, ingest 5.0 s |" in table
    assert "| 1,000,000 | 200 s · 2.0 GB | 400 s · 2.0 GB | 50% |" in table
    day2 = [t for t in report.targets(results) if "realistic next day" in t[0]]
    assert len(day2) == 1 and day2[0][1] == "200 s" and day2[0][2] is False and "400 s" in day2[0][3]
    results["steps"][2]["seconds"] = 170.0
    assert next(t for t in report.targets(results) if "realistic next day" in t[0])[2] is True
    assert report.day_two_table({"sizes": [10_000], "steps": []}) == []


def test_a_runs_phases_come_from_its_own_log_the_last_of_var_logs(tmp_path: Path) -> None:
    logs = tmp_path / "var" / "logs"
    logs.mkdir(parents=True)
    day1 = "10:00:00.000 | INFO    | Flow run 'a-b' - Beginning flow run 'a-b' for flow 'daily'\n"
    (logs / "run-20261123T100000Z-1.log").write_text(day1, encoding="utf-8")
    (logs / "run-20261124T100000Z-2.log").write_text(
        "10:00:00.000 | INFO    | Flow run 'c-d' - Beginning flow run 'c-d' for flow 'daily'\n"
        "10:00:05.500 | INFO    | Task run 'ingest-123' - Finished in state Completed()\n"
        "10:00:09.000 | INFO    | Task run 'quality-gate-456' - Finished in state Completed()\n"
        "10:00:12.000 | INFO    | Task run 'campaign-winback' - Finished in state Completed()\n"
        "10:00:13.000 | INFO    | Task run 'campaign-renewal_reminder' - Finished in state Completed()\n"
        "10:00:14.000 | INFO    | Flow run 'c-d' - Finished in state Completed()\n",
        encoding="utf-8",
    )
    step = plan.end_to_end(300, tmp_path, tmp_path, tmp_path)
    parsed = plan.parse_run_log(tmp_path / "var", step)
    assert parsed["phases"] == {"ingest": 5.5, "quality-gate": 3.5, "campaigns": 4.0}
    assert parsed["flow_seconds"] == 14.0 and parsed["task_runs"] == 4
    assert plan.parse_run_log(tmp_path / "elsewhere", step) == {}


def test_the_chart_draws_both_day_two_runs_with_whole_names(tmp_path: Path) -> None:
    results = {"date": "2026-12-06", "sizes": [10_000, 1_000_000], "steps": [
        _run_row(size, step, seconds * scale, {})
        for size, scale in ((10_000, 1.0), (1_000_000, 8.0))
        for step, seconds in (("e2e", 60.0), ("e2e-day2", 40.0), ("e2e-day2-full", 50.0))
    ]}  # fmt: skip
    whats = {r["what"] for r in report.chart_records(results)}
    assert {"kizuna run, day 2, incremental", "kizuna run, day 2, full refresh"} <= whats
    chart = tmp_path / "growth.svg"
    report.chart(results, chart)
    svg = chart.read_text(encoding="utf-8")
    assert "kizuna run, day 2, full refresh</text>" in svg  # the whole name, not cut to "…"
    # the x axis is labelled at the measured sizes alone (its own log ticks drew "30,00040,000" on top of each other)
    ticks = re.findall(r">([0-9][0-9,]*)</text>", svg)
    assert "10,000" in ticks and "1,000,000" in ticks and "30,000" not in ticks and "20,000" not in ticks
