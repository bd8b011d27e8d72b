"""The campaigns flow on its own: deployable on a schedule inside the send window, and it refuses unchecked marts."""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path

import pytest
import yaml

from kizuna.core.settings import PROJECT_DIR, Settings
from kizuna.quality.gate import GateNotPassedError


def _deployment(name: str) -> dict:
    spec = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text(encoding="utf-8"))
    [deployment] = [d for d in spec["deployments"] if d["name"] == name]
    return deployment


def test_the_campaigns_deployment_runs_the_flow_inside_the_default_send_window() -> None:
    deployment = _deployment("campaigns")
    path, _, name = deployment["entrypoint"].partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    assert getattr(module, name).name == "campaigns"
    assert deployment["enforce_parameter_schema"] and deployment["work_pool"]["name"] == "kizuna-process"
    [schedule] = deployment["schedules"]
    minute, hour, *_ = schedule["cron"].split()
    opens, closes = Settings.model_fields["send_window"].default.split("-")
    assert schedule["timezone"] == "Asia/Tokyo"
    assert opens <= f"{int(hour):02d}:{int(minute):02d}" < closes


def test_on_its_own_the_flow_refuses_a_warehouse_no_load_has_passed_the_gate(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.campaigns import campaigns

    monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("KIZUNA_OUTBOX_DIR", str(tmp_path / "var" / "outbox"))
    with pytest.raises(GateNotPassedError, match="no load has passed the quality gate"):
        campaigns(warehouse=str(tmp_path / "warehouse.duckdb"), as_of=dt.date(2026, 11, 23))
    assert not list((tmp_path / "var" / "outbox").glob("*.eml"))
