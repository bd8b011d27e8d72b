"""dbt inside the run: a lock is retried with `dbt retry` (finished nodes stay), a failed data test never is."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from kizuna.core.settings import Settings
from kizuna.transform import dbt_runner

AS_OF = date(2026, 11, 23)
LOCKED = 'IO Error: Could not set lock on file "w.duckdb": Conflicting lock is held in /usr/bin/python (PID 4242)'


def _results(path: Path, rows: list[tuple[str, str, str | None]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"results": [{"unique_id": u, "status": s, "message": m, "execution_time": 0.1} for u, s, m in rows]}
    path.write_text(json.dumps(doc), encoding="utf-8")


@pytest.fixture
def dbt_settings(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path / "var", warehouse=tmp_path / "w.duckdb", dbt_lock_retry_delay_seconds=0)


def test_a_lock_is_retried_with_dbt_retry_and_finished_nodes_are_kept(dbt_settings: Settings) -> None:
    path = dbt_runner.run_results_path(dbt_settings)
    commands: list[str] = []

    def invoke(args: list[str]) -> str | None:
        commands.append(args[0])
        if args[0] == "build":
            _results(
                path,
                [
                    ("model.kizuna.customers", "success", None),
                    ("model.kizuna.mrr_kpis_monthly", "error", LOCKED),
                    ("test.kizuna.not_null_mrr", "skipped", None),
                ],
            )
        else:  # dbt retry runs only what failed or was skipped
            assert "--vars" not in args, "dbt retry reuses the failed command's vars"
            _results(
                path, [("model.kizuna.mrr_kpis_monthly", "success", None), ("test.kizuna.not_null_mrr", "pass", None)]
            )
        return None

    result = dbt_runner.build(dbt_settings, AS_OF, invoke=invoke)
    assert commands == ["build", "retry"]
    assert result.count("model") == 2 and result.count("test") == 1 and not result.failed


def test_a_failed_data_test_is_never_retried(dbt_settings: Settings) -> None:
    path = dbt_runner.run_results_path(dbt_settings)
    commands: list[str] = []

    def invoke(args: list[str]) -> str | None:
        commands.append(args[0])
        _results(path, [("model.kizuna.customers", "success", None), ("test.kizuna.unique_customer", "fail", "Got 2")])
        return None

    with pytest.raises(dbt_runner.DbtBuildError, match=r"check 'unique customer' \(.*\): 2 rows break it"):
        dbt_runner.build(dbt_settings, AS_OF, invoke=invoke)
    assert commands == ["build"]


def test_a_lock_that_stays_fails_after_the_retries(dbt_settings: Settings) -> None:
    commands: list[str] = []

    def invoke(args: list[str]) -> str | None:
        commands.append(args[0])
        return f"Runtime Error: {LOCKED}"  # dbt stopped before any node: no run_results.json

    with pytest.raises(dbt_runner.DbtBuildError, match="PID 4242"):
        dbt_runner.build(dbt_settings, AS_OF, invoke=invoke)
    assert commands == ["build"] * (dbt_settings.dbt_lock_retries + 1)
