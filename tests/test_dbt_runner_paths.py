"""dbt's outputs land under var/ whoever invokes dbt: PrefectDbtRunner resolves relative paths elsewhere."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kizuna.core.settings import Settings
from kizuna.transform.dbt_runner import dbt_args, run_results_path


def test_target_and_log_paths_are_absolute_even_for_a_relative_var_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(var_dir=Path("var"))
    args = dbt_args(settings, "build")
    target = Path(args[args.index("--target-path") + 1])
    logs = Path(args[args.index("--log-path") + 1])
    assert target == tmp_path / "var" / "dbt" / "target" and logs.is_absolute()
    assert run_results_path(settings) == target / "run_results.json"


def test_production_builds_leave_unit_tests_to_ci(tmp_path: Path) -> None:
    """Data tests always run; unit tests (fixed inputs, CI's job) only when asked."""
    from kizuna.transform import dbt_runner

    seen: list[list[str]] = []

    def record(args: list[str]) -> str | None:
        seen.append(args)
        return None

    settings = Settings(var_dir=tmp_path / "var", warehouse=tmp_path / "w.duckdb")
    dbt_runner.build(settings, dt.date(2026, 11, 23), invoke=record)
    dbt_runner.build(settings.model_copy(update={"dbt_unit_tests": True}), dt.date(2026, 11, 23), invoke=record)
    assert "--exclude-resource-type" in seen[0] and seen[0][seen[0].index("--exclude-resource-type") + 1] == "unit_test"
    assert "--exclude-resource-type" not in seen[1]


def test_dbt_reuses_its_parse_on_a_new_date_but_not_after_the_checkout_moved(tmp_path: Path) -> None:
    """The date travels outside --vars: day two reuses day one's parse and still compiles day two's date.

    var/ outlives a checkout (an upgrade clones the project anew beside the old var/): dbt's saved parse names the
    old checkout's files by absolute path, and reusing it read a seed from a directory that was gone.
    """
    import shutil

    from kizuna.core.settings import PROJECT_DIR
    from kizuna.core.warehouse import connect
    from kizuna.transform import dbt_runner
    from tests.dbt.helpers import ensure_raw_schema

    old = tmp_path / "kizuna-old"
    shutil.copytree(
        PROJECT_DIR / "dbt_project", old / "dbt_project", ignore=shutil.ignore_patterns("target", "logs", ".user.yml")
    )
    settings = Settings(project_dir=old, var_dir=tmp_path / "var", warehouse=tmp_path / "w.duckdb")
    with connect(settings.warehouse) as con:
        ensure_raw_schema(con)
    target = run_results_path(settings).parent
    log = target.parent / "logs" / "dbt.log"
    parsing = []
    select = "+int_months stg_crm__customers stg_crm__contacts fx_rates"
    for day in (dt.date(2026, 11, 23), dt.date(2026, 12, 4)):
        dbt_runner.build(settings, day, select=select)
        said = [line for line in log.read_text().splitlines() if "partial pars" in line.lower()]
        parsing.append(said[-1])
        compiled = next(target.glob("compiled/*/models/intermediate/revenue/int_months.sql")).read_text()
        assert f"cast('{day.isoformat()}' as date)" in compiled
    assert "Unable to do partial parsing" in parsing[0]
    assert "no changes found, skipping parsing" in parsing[1], parsing[1]

    new = old.rename(tmp_path / "kizuna-new")  # the old checkout is gone, var/ stays
    built = dbt_runner.build(settings.model_copy(update={"project_dir": new}), dt.date(2026, 12, 5), select=select)
    assert "seed.kizuna.fx_rates" in {n.name for n in built.nodes if n.status == "success"}
