"""KIZUNA_VAR_DIR moves everything a run writes: the paths not set on their own follow it, the ones set stay."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kizuna.cli import app
from kizuna.core.settings import Settings

PATHS = {"warehouse": "warehouse.duckdb", "outbox_dir": "outbox", "events_dir": "events", "source_dir": "demo-data"}


def test_paths_not_set_follow_the_var_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in PATHS:
        monkeypatch.delenv(f"KIZUNA_{name.upper()}", raising=False)
    monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "elsewhere"))
    settings = Settings()
    for name, leaf in PATHS.items():
        assert getattr(settings, name) == tmp_path / "elsewhere" / leaf, name


def test_paths_set_on_their_own_stay_where_they_were_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("KIZUNA_OUTBOX_DIR", str(tmp_path / "mail"))
    settings = Settings(warehouse=tmp_path / "w.duckdb")
    assert settings.outbox_dir == tmp_path / "mail"
    assert settings.warehouse == tmp_path / "w.duckdb"
    assert settings.events_dir == tmp_path / "var" / "events"


def test_the_default_var_dir_keeps_the_documented_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*PATHS, "var_dir"]:
        monkeypatch.delenv(f"KIZUNA_{name.upper()}", raising=False)
    settings = Settings()
    assert settings.warehouse == Path("var/warehouse.duckdb")
    assert settings.outbox_dir == Path("var/outbox")
    assert settings.source_dir == Path("var/demo-data")


def test_demo_data_writes_under_the_var_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A newcomer who points KIZUNA_VAR_DIR elsewhere and runs demo-data then run finds both in one place.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KIZUNA_SOURCE_DIR", raising=False)
    monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "elsewhere"))
    result = CliRunner().invoke(app, ["demo-data", "--customers", "20", "--as-of", "2026-11-30"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere" / "demo-data" / "customers.csv").exists()
    assert not (tmp_path / "var").exists()


def test_a_var_dir_that_is_a_file_is_named_not_a_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "notes.txt"))
    result = CliRunner().invoke(app, ["run", "--as-of", "2026-11-30"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: KIZUNA_VAR_DIR") and "is a file" in result.output
    assert "Traceback" not in result.output
