"""A KIZUNA_* value that cannot be read: one line naming the variable, exit 2, before any command starts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kizuna.cli import app

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
