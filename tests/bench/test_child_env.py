"""The benchmark's runs get the environment a user's would: a variable the plan unsets is absent, not empty."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import pytest

from bench.harness import plan
from bench.harness.measure import run_measured

_PRINT_API_URL = "import os, sys; open(sys.argv[1], 'w').write(repr(os.environ.get('PREFECT_API_URL')))"


def test_a_run_of_kizuna_has_no_prefect_api_url_even_when_the_bench_was_started_with_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PREFECT_API_URL="" is not a plain `kizuna run`: Prefect then logs a failed event emission (an ERROR and a
    # traceback) for every state change, 46 of them in a day's run log at 1M.
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    monkeypatch.setenv("KIZUNA_BENCH_KEPT", "kept")
    step = plan.end_to_end(10, tmp_path / "w", tmp_path / "data", tmp_path / "home", as_of=date(2026, 11, 23))
    seen = tmp_path / "seen.txt"
    measured = run_measured(
        [
            sys.executable,
            "-c",
            _PRINT_API_URL + "; open(sys.argv[2], 'w').write(os.environ['KIZUNA_BENCH_KEPT'])",
            str(seen),
            str(tmp_path / "kept.txt"),
        ],
        env=step.env,
    )
    assert measured.ok, measured.error
    assert seen.read_text() == "None"
    assert (tmp_path / "kept.txt").read_text() == "kept"  # the rest of the environment is passed on
    day2 = plan.daily_end_to_end(step)
    assert "PREFECT_API_URL" in day2.env and day2.env["PREFECT_API_URL"] is None
