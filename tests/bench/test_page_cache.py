"""The bench puts the page cache in one state before each measured `kizuna run` (bench.harness.cache)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.harness import cache, plan, report
from bench.run import Harness, parse_args


def tree(root: Path) -> int:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "one.csv").write_bytes(b"x" * 3_000_000)  # more than one read's chunk
    (root / "a" / "b" / "two.csv").write_bytes(b"y" * 10)
    (root / "three.duckdb").write_bytes(b"z" * 7)
    return 3_000_017


def test_warm_reads_every_byte_of_every_file_under_the_inputs(tmp_path: Path) -> None:
    size = tree(tmp_path / "in")
    assert cache.prepare("warm", [tmp_path / "in", tmp_path / "missing"]) == {
        "page_cache": "warm",
        "warmed_bytes": size,
    }
    assert cache.read_through([tmp_path / "in" / "three.duckdb"]) == 7  # a file given by itself


def test_cold_syncs_and_writes_one_to_the_control_file(tmp_path: Path) -> None:
    control = tmp_path / "drop_caches"
    control.write_text("", encoding="ascii")
    assert cache.prepare("cold", [tmp_path], control=control) == {"page_cache": "cold"}
    assert control.read_text(encoding="ascii") == "1\n"


def test_cold_without_the_right_to_drop_says_so_and_names_the_way_out(tmp_path: Path) -> None:
    refused = tmp_path / "no-such-dir" / "drop_caches"  # as /proc/sys/vm/drop_caches refuses a non-root writer
    with pytest.raises(cache.PageCacheError, match="needs root; use --page-cache warm"):
        cache.prepare("cold", [tmp_path], control=refused)
    with pytest.raises(ValueError, match="warm, cold, as-is"):
        cache.prepare("lukewarm", [tmp_path])


def test_the_harness_warms_a_measured_runs_inputs_first_and_records_the_mode(tmp_path: Path) -> None:
    size = tree(tmp_path / "in")
    args = parse_args(["--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "r.json"), "--no-docs"])
    assert args.page_cache == "warm"  # the default: figures never mix cold and warm reads again
    harness = Harness(args, [300])
    step = plan.Step("t", "t", plan.END_TO_END, [sys.executable, "-c", "pass"], reads=(tmp_path / "in",))
    assert harness.run(step, 300).ok
    row = harness.results["steps"][-1]
    assert row["details"]["page_cache"] == "warm" and row["details"]["warmed_bytes"] == size
    assert harness.results["page_cache"] == "warm"
    assert "Page cache: warm" in report.page_cache_sentence(harness.results)
    assert "mixed" in report.page_cache_sentence({})  # results from before the setting: as-is


def test_a_kizuna_run_step_reads_its_sources_and_its_warehouse_folder(tmp_path: Path) -> None:
    step = plan.end_to_end(300, tmp_path / "run", tmp_path / "data", tmp_path / "prefect-home")
    assert step.reads == (tmp_path / "data", tmp_path / "run")
