"""`kizuna crm setup` and `kizuna crm sync --dry-run` against the HubSpot stand-in: what they print and send."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kizuna.cli.main import app
from kizuna.core.settings import Settings
from tests.crm.conftest import AS_OF
from tests.standins.hubspot_api import TOKEN, HubSpotStandin

runner = CliRunner()


@pytest.fixture
def cli_env(crm_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("warehouse", "var_dir", "crm_target", "crm_queue_email", "crm_account_id_property",
                 "hubspot_base_url"):  # fmt: skip
        monkeypatch.setenv(f"KIZUNA_{name.upper()}", str(getattr(crm_settings, name)))
    monkeypatch.setenv("KIZUNA_HUBSPOT_TOKEN", TOKEN)
    monkeypatch.setenv("KIZUNA_CRM_SLA_DAYS", "A=2,B=3,C=4")
    return crm_settings


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_dry_run_prints_the_diff_and_sends_nothing(cli_env: Settings, hubspot: HubSpotStandin) -> None:
    code, out = invoke("crm", "sync", "--dry-run", "--as-of", AS_OF.isoformat())
    assert code == 0, out
    assert hubspot.state.requests == []
    assert "account C0001 (?): kizuna_rank='A'" in out
    assert "task call:call_list:C0001:2026-12-04: for ae2@example.co.jp, due 2026-12-08" in out  # A=2 days
    assert "would update 241 of 241 accounts" in out and "would create 136 of 136 tasks" in out
    assert TOKEN not in out

    code, out = invoke("crm", "sync", "--as-of", AS_OF.isoformat())  # C0250 has no company: said, not a failure
    assert code == 0 and "warning: 1 customers have no account in hubspot (matched by customer id)" in out
    assert "wait: C0250" in out and "errors: 0" in out
    code, out = invoke("crm", "sync", "--dry-run", "--as-of", AS_OF.isoformat())
    # Only C0250, whom a dry run cannot look up in HubSpot, is still listed.
    assert code == 0 and "would update 1 of 241 accounts (240 unchanged" in out and "would create 1 of 136" in out


def test_setup_creates_the_properties_once(cli_env: Settings, hubspot: HubSpotStandin) -> None:
    code, out = invoke("crm", "setup", "--dry-run")
    assert code == 0 and "would create  companies.kizuna_rank" in out
    assert not [r for r in hubspot.state.requests if r.method == "POST"]
    code, out = invoke("crm", "setup")
    # ten company properties, the task key, four deal properties, the review date on four activity types
    assert code == 0 and out.count("created") == 19, out
    props = hubspot.state.properties[("companies", "properties")]
    assert props["kizuna_rank"]["type"] == "enumeration" and props["kizuna_rank"]["groupName"] == "kizuna"
    assert [o["value"] for o in props["kizuna_rank"]["options"]] == ["A", "B", "C"]
    assert "kizuna_task_key" in hubspot.state.properties[("tasks", "properties")]
    deals = hubspot.state.properties[("deals", "properties")]
    assert {n: (p["type"], p["fieldType"]) for n, p in deals.items()} == {
        "kizuna_handed_off_at": ("datetime", "date"),
        "kizuna_accepted_at": ("datetime", "date"),
        "kizuna_rejected_at": ("datetime", "date"),
        "kizuna_next_review_on": ("date", "date"),
    }
    for activity in ("calls", "meetings", "notes", "emails"):
        assert list(hubspot.state.properties[(activity, "properties")]) == ["kizuna_next_review_on"]
    code, out = invoke("crm", "setup")
    assert code == 0 and "created" not in out and out.count("ok") == 19


def test_setup_leaves_out_what_the_sources_file_maps_to_the_companys_own_properties(
    cli_env: Settings, hubspot: HubSpotStandin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A company that logs hand-offs in a property of its own already has it: kizuna creates only the rest."""
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "tables:\n  deals: hubspot\n  activities: hubspot\n"
        "hubspot:\n  properties:\n    deals: {handed_off_at: handoff_date, next_review_on: follow_up_date}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("KIZUNA_SOURCES_CONFIG", str(sources))
    code, out = invoke("crm", "setup")
    assert code == 0, out
    deals = hubspot.state.properties[("deals", "properties")]
    assert sorted(deals) == ["kizuna_accepted_at", "kizuna_rejected_at"]
    assert "kizuna_next_review_on" in hubspot.state.properties[("calls", "properties")]


def test_a_conflicting_property_is_named(cli_env: Settings, hubspot: HubSpotStandin) -> None:
    hubspot.state.properties[("companies", "properties")] = {"kizuna_rank": {"name": "kizuna_rank", "type": "number"}}
    code, out = invoke("crm", "setup")
    assert code == 1 and "CONFLICT  companies.kizuna_rank  exists as number" in out


def test_a_refused_token_is_said_without_the_token(cli_env: Settings, hubspot: HubSpotStandin) -> None:
    hubspot.state.token = "pat-na1-00000000-0000-0000-0000-000000000000"  # the account's token was rotated
    hubspot.state.echo_token_in_errors = True
    code, out = invoke("crm", "sync", "--as-of", AS_OF.isoformat())
    assert code == 1 and "HubSpot refused the token (401" in out
    assert TOKEN not in out and "pat-na1" not in out


def test_no_crm_target_is_a_clear_error(cli_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIZUNA_CRM_TARGET", "none")
    code, out = invoke("crm", "sync", "--dry-run")
    assert code == 1 and "KIZUNA_CRM_TARGET is 'none'" in out
