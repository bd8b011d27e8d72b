"""A KIZUNA_* value that cannot be read: one line naming the variable, exit 2, before any command starts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kizuna.cli import app
from kizuna.core.settings import Settings
from tests.ops.conftest import tool, workspace_env

runner = CliRunner()


@pytest.mark.parametrize(
    ("variable", "value", "said", "command"),
    [
        ("KIZUNA_CRM_SLA_DAYS", "A=1,B=x", "write rank=days pairs", ["crm", "sync", "--dry-run"]),
        ("KIZUNA_WAREHOUSE_WAIT_SECONDS", "ten", "valid number", ["check"]),
        ("KIZUNA_CRM_TARGET", "dynamics", "'hubspot' or 'salesforce'", ["report"]),
    ],
)
def test_a_bad_setting_is_named_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str, command: list[str]
) -> None:
    monkeypatch.setenv(variable, value)
    result = runner.invoke(app, command)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith(f"error: {variable}") and said in lines[0]
    assert "Traceback" not in result.output and len(lines) == 1


def test_the_secret_of_a_bad_setting_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIZUNA_HUBSPOT_TOKEN", "pat-na1-secret-value")
    monkeypatch.setenv("KIZUNA_CONNECTOR_MAX_RETRIES", "pat-na1-secret-value")  # pasted into the wrong variable
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 2 and "KIZUNA_CONNECTOR_MAX_RETRIES" in result.output
    assert "pat-na1-secret-value" not in result.output


SERVER_URL = "postgresql://kizuna:pg-pass-1234@db.internal:5432/kizuna"


def test_a_server_url_as_the_warehouse_is_refused_without_showing_its_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Before: the URL became the relative path "postgresql:/kizuna:pg-pass-1234@db.internal:5432/kizuna", a new
    # DuckDB file under folders named after the password, and the run's outputs printed it.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KIZUNA_WAREHOUSE", SERVER_URL)
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: KIZUNA_WAREHOUSE: a postgresql:// URL names a server")
    assert "pg-pass-1234" not in result.output and "file path" in lines[0]
    assert not (tmp_path / "postgresql:").exists()


def test_the_warehouse_option_is_checked_the_same_way(tmp_path: Path) -> None:
    done = subprocess.run(
        [tool("python"), "-m", "kizuna.cli", "run", "--warehouse", SERVER_URL, "--source-dir", str(tmp_path / "none")],
        env=workspace_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout
    assert done.stdout.strip().splitlines() == [
        "error: --warehouse: a postgresql:// URL names a server, and kizuna's daily run cannot use a server "
        "warehouse yet (docs/scaling.md says which steps can), so give a file path such as var/warehouse.duckdb"
    ]
    assert not (tmp_path / "postgresql:").exists() and not (tmp_path / "var").exists()


@pytest.mark.parametrize("path", ["var/warehouse.duckdb", "/data/kizuna/warehouse.duckdb", "exports:2026/w.duckdb"])
def test_a_file_path_is_still_a_warehouse(path: str) -> None:
    assert Settings(warehouse=path).warehouse == Path(path)  # type: ignore[arg-type]
