"""A KIZUNA_PROJECT_DIR that is no kizuna checkout: refused by name before a pipeline step runs, never a gate
without suites publishing whatever was staged."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from kizuna import pipeline
from kizuna.cli import app
from kizuna.core.settings import PROJECT_DIR, ProjectDirError
from kizuna.core.warehouse import table_exists
from kizuna.demo.generate import generate_demo_data
from kizuna.sources.ingest import stage_sources
from tests.conftest import demo_settings

AS_OF = dt.date(2026, 11, 23)


@pytest.mark.parametrize("command", ["ingest", "check", "build", "run"])
def test_a_pipeline_command_names_a_project_dir_that_is_no_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: str
) -> None:
    wrong = tmp_path / "kizuna-data"  # e.g. the data folder given where the checkout was meant
    wrong.mkdir()
    monkeypatch.setenv("KIZUNA_PROJECT_DIR", str(wrong))
    monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "var"))
    result = CliRunner().invoke(app, [command])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith(f"error: KIZUNA_PROJECT_DIR: {wrong} is not a kizuna checkout"), result.output
    assert "dbt_project/dbt_project.yml" in lines[0] and "expectations/*.json" in lines[0]
    assert "Traceback" not in result.output and "looks like a bug" not in result.output
    assert not (tmp_path / "var" / "warehouse.duckdb").exists()


def test_other_commands_do_not_need_the_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KIZUNA_PROJECT_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["demo-data", "--customers", "5", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output


def test_the_gate_without_suites_refuses_to_publish(tmp_path: Path) -> None:
    """A deployment whose KIZUNA_PROJECT_DIR lost expectations/: the flow's gate step would find no suites, check
    nothing and publish the load. It stops instead, and raw is not made."""
    settings = demo_settings(tmp_path)
    generate_demo_data(settings.source_dir, customers=30, seed=7, as_of=AS_OF)
    stage_sources(settings)
    half = tmp_path / "half-checkout"
    shutil.copytree(PROJECT_DIR / "dbt_project", half / "dbt_project")
    (half / "expectations").mkdir()
    with pytest.raises(ProjectDirError, match=r"it has no expectations/\*\.json"):
        pipeline.gate(settings.model_copy(update={"project_dir": half}), AS_OF)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert not table_exists(con, "raw", "customers")
        assert table_exists(con, "raw_incoming", "customers")  # the staged load is kept for the next try
