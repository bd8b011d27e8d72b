"""The benchmark harness still runs end to end at a tiny size and writes its block of docs/benchmarks.md.

Timings are never asserted (they flake on shared machines): only that every step ran, measured something and
was read, and that the docs generator rewrites its own block and nothing else.
"""

from __future__ import annotations

import json
import os
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
    expected = {(None, "import:python itself"), (300, "demo"), *((300, s) for s in plan.SMOKE_STEPS)}
    assert set(rows) == expected
    for key, row in rows.items():
        assert row["ok"], (key, row.get("error"), row.get("details"))
        assert row["seconds"] > 0 and row["peak_mb"] > 0, key
    for step in ("render", "deliver", "events-load"):  # figures read from the other benchmarks' output
        assert rows[(300, step)]["work_seconds"] > 0 and rows[(300, step)]["details"]["per_second"] > 0, step
    assert rows[(300, "ingest")]["details"]["rows"] > 300  # reported from inside the step process
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
