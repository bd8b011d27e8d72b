"""A KIZUNA_* value that cannot be read: one line naming the variable, exit 2, before any command starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kizuna.cli import app
from kizuna.core.settings import Settings, settings_with
from tests.ops.conftest import kizuna

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
OTHER_SERVER_URL = "mysql://kizuna:my-pass-1234@db.internal:3306/kizuna"


def test_a_url_of_another_server_as_the_warehouse_is_refused_without_showing_its_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Before: the URL became the relative path "mysql:/kizuna:my-pass-1234@db.internal:3306/kizuna", a new
    # DuckDB file under folders named after the password, and the run's outputs printed it.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KIZUNA_WAREHOUSE", OTHER_SERVER_URL)
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: KIZUNA_WAREHOUSE: a mysql:// URL names a server")
    assert "my-pass-1234" not in result.output and "postgresql://" in lines[0] and "file path" in lines[0]
    assert not (tmp_path / "mysql:").exists()


def test_the_server_url_setting_takes_postgresql_only_and_never_shows_a_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KIZUNA_WAREHOUSE_URL", OTHER_SERVER_URL)
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: KIZUNA_WAREHOUSE_URL: is a mysql:// URL"), lines
    assert "my-pass-1234" not in result.output


def test_the_warehouse_option_is_checked_the_same_way(tmp_path: Path) -> None:
    done = kizuna(tmp_path, "run", "--warehouse", OTHER_SERVER_URL, "--source-dir", str(tmp_path / "none"), timeout=120)
    assert done.returncode == 2, done.stdout
    assert done.stdout.strip().splitlines() == [
        "error: --warehouse: a mysql:// URL names a server kizuna cannot use as its warehouse: give a postgresql:// "
        "URL (docs/scaling.md) or a DuckDB file path such as var/warehouse.duckdb"
    ]
    assert not (tmp_path / "mysql:").exists() and not (tmp_path / "var").exists()


@pytest.mark.parametrize("how", ["KIZUNA_WAREHOUSE", "KIZUNA_WAREHOUSE_URL", "option"])
def test_a_postgresql_url_is_the_warehouse_kept_secret(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "option":
        settings = settings_with(warehouse=SERVER_URL)
    else:
        monkeypatch.setenv(how, SERVER_URL)
        settings = Settings()
    assert settings.warehouse_target == SERVER_URL  # what connect() opens
    assert settings.warehouse_label == "postgresql://kizuna@db.internal:5432/kizuna"
    assert settings.warehouse_parameter is None  # a flow never gets it as a parameter (Prefect stores those)
    assert not settings.warehouse_missing
    assert "pg-pass-1234" not in repr(settings) and "pg-pass-1234" not in str(settings.model_dump())


def test_an_explicit_file_wins_over_a_server_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIZUNA_WAREHOUSE_URL", SERVER_URL)
    settings = settings_with(warehouse="other.duckdb")
    assert settings.warehouse_target == Path("other.duckdb") and settings.warehouse_parameter == "other.duckdb"


def test_a_server_that_cannot_be_reached_is_one_line_without_the_password(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    url = "postgresql://kizuna:pg-pass-1234@127.0.0.1:1/kizuna"
    done = kizuna(tmp_path, "check", "--warehouse", url, timeout=120)
    assert done.returncode != 0, done.stdout
    assert "pg-pass-1234" not in done.stdout and "Traceback" not in done.stdout, done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].startswith(
        "error: cannot reach the PostgreSQL warehouse postgresql://kizuna@127.0.0.1:1/kizuna: connection to server"
    ), done.stdout
    assert lines[1].startswith("what to do: check that the server runs and KIZUNA_WAREHOUSE_URL"), done.stdout


@pytest.mark.parametrize("path", ["var/warehouse.duckdb", "/data/kizuna/warehouse.duckdb", "exports:2026/w.duckdb"])
def test_a_file_path_is_still_a_warehouse(path: str) -> None:
    assert Settings(warehouse=path).warehouse == Path(path)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", [["run"], ["check"], ["ledger", "unknown"]])
def test_an_option_taken_for_the_warehouse_path_is_refused_before_any_file_is_made(
    tmp_path: Path, command: list[str]
) -> None:
    # Before: `kizuna run --warehouse --help` (the path forgotten) took "--help" for the DuckDB file and left files
    # named --help and --help.writer.lock in the working directory.
    done = kizuna(tmp_path, *command, "--warehouse", "--help", timeout=120)
    assert done.returncode == 2, done.stdout
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines == [
        "error: --warehouse: '--help' looks like an option, not a file: give the DuckDB file's path after it, "
        "such as var/warehouse.duckdb"
    ]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("-")]
