"""`kizuna campaigns` commands on hand-built marts: list, preview --json, dry run, holds, call list."""

from __future__ import annotations

import csv
import json
import os
import shlex
from pathlib import Path

import pytest
from click.testing import Result
from openpyxl import load_workbook
from typer.testing import CliRunner

from kizuna.cli import app
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from tests.campaigns.test_select import AS_OF, build_marts

runner = CliRunner()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    build_marts(tmp_path / "warehouse.duckdb")
    campaigns = tmp_path / "campaigns"
    campaigns.mkdir()
    (campaigns / "renewal_reminder.yml").write_text(
        (Settings().campaigns_dir / "renewal_reminder.yml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (campaigns / "call_today.yml").write_text(
        "name: call_today\nkind: call_list\naudience: {status: active, ranks: [A, B]}\n"
        "hypothesis: 大口顧客の更新前フォロー\nnext_action: 電話で利用状況を確認\n",
        encoding="utf-8",
    )
    for key, value in {
        "KIZUNA_WAREHOUSE": tmp_path / "warehouse.duckdb",
        "KIZUNA_VAR_DIR": tmp_path / "var",
        "KIZUNA_OUTBOX_DIR": tmp_path / "var" / "outbox",
        "KIZUNA_CAMPAIGNS_DIR": campaigns,
    }.items():
        monkeypatch.setenv(key, str(value))
    return Settings()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_list_shows_every_campaign(cli_env: Settings) -> None:
    out = invoke("campaigns", "list")
    assert "renewal_reminder" in out and "call_today" in out and "call_list" in out


def test_preview_json_is_stable_and_records_nothing(cli_env: Settings) -> None:
    first = json.loads(invoke("campaigns", "preview", "renewal_reminder", "--as-of", AS_OF.isoformat(), "--json"))
    again = json.loads(invoke("campaigns", "preview", "renewal_reminder", "--as-of", AS_OF.isoformat(), "--json"))
    assert first == again
    assert {"campaign", "treatment", "holdout", "excluded"} <= set(first)
    assert first["campaign"] == "renewal_reminder" and first["treatment"] == 1 and first["holdout"] == 0
    assert first["excluded"] == {"duplicate_email": 1, "invalid_email": 1, "no_marketing_consent": 1}
    assert first["sample"][0]["reasons"]["renewal_on"] == "2026-12-23"
    with connect(cli_env.warehouse) as con:
        tables = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'ops'"
            ).fetchall()
        }
    assert "campaign_recipients" not in tables  # the selection was rolled back


def test_dry_run_renders_everything_and_sends_nothing(cli_env: Settings) -> None:
    out = invoke("campaigns", "send", "renewal_reminder", "--dry-run", "--as-of", AS_OF.isoformat())
    assert "1 messages rendered, none sent" in out
    assert not list(cli_env.outbox_dir.glob("*.eml"))
    assert list((cli_env.var_dir / "dry-run").rglob("*.eml"))


def test_hold_approve_and_resume_from_the_command_line(cli_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIZUNA_APPROVAL_REQUIRED", "always")
    out = invoke("campaigns", "send", "renewal_reminder", "--as-of", AS_OF.isoformat(), "--run-id", "run-1")
    assert "held" in out and "first send" in out
    assert "run-1  renewal_reminder: 1 recipients" in invoke("campaigns", "holds")
    invoke("campaigns", "approve", "run-1", "renewal_reminder", "--by", "manager@example.co.jp")
    out = invoke("campaigns", "send", "renewal_reminder", "--as-of", AS_OF.isoformat(), "--run-id", "run-1")
    assert "sent; 1 sent" in out
    result = runner.invoke(app, ["campaigns", "approve", "run-1", "renewal_reminder", "--by", "x"])
    assert result.exit_code == 1 and "already approved" in result.output


def test_call_list_orders_by_rank_and_writes_a_csv(cli_env: Settings) -> None:
    invoke("campaigns", "send", "call_today", "--as-of", AS_OF.isoformat(), "--run-id", "run-1")
    [path] = list((cli_env.var_dir / "call_lists").glob("*.csv"))
    with path.open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["customer_id"] for r in rows] == ["C1", "C6", "C3", "C2"]  # A before B; C3 untouched longest
    assert rows[1]["owner_email"] == "sato@kizuna-demo.example"
    assert rows[0]["owner_email"] == "(inside sales queue)"
    assert rows[0]["hypothesis"] == "大口顧客の更新前フォロー"
    # C1 is near its plan limit: its own next action; C2 has no open signal: the campaign's
    assert rows[0]["next_action"] == "上位プランを提案する" and rows[3]["next_action"] == "電話で利用状況を確認"
    assert path.with_suffix(".xlsx").stat().st_size > 0  # the same list for reps, in Excel
    assert not list(cli_env.outbox_dir.glob("*.eml"))


def fails(*args: str) -> str:
    """The command exits 1 with one line of error, no traceback; returns that line."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "name: dormant\ntemplate: dormant_reactivaton\naudience: {ranks: [C]}\n",
            ["dormant.yml", "key template", "'dormant_reactivaton'", "did you mean dormant_reactivation?"],
        ),
        (
            "name: dormant\ntemplate: dormant_reactivation\naudience: {day_since_last_touch: {min: 90}}\n",
            ["dormant.yml", "key audience.day_since_last_touch", "did you mean days_since_last_touch?"],
        ),
        (
            "name: dormant\ntemplate: dormant_reactivation\naudience: {ranks: [C]}\nholdout_percnt: 10\n",
            ["dormant.yml", "key holdout_percnt", "did you mean holdout_percent?"],
        ),
        (
            "name: dormant\ntemplate: dormant_reactivation\naudience: {tenure_months: {minimum: 3}}\n",
            ["dormant.yml", "key audience.tenure_months.minimum", "did you mean min?"],
        ),
        (
            "name: dormant\ntemplate: dormant_reactivation\naudience: {where: 'c.plan_usage_ration >= 0.8'}\n",
            ["dormant.yml", "key audience.where", "plan_usage_ration", "did you mean plan_usage_ratio?"],
        ),
        (
            "name: dormant\ntemplate: dormant_reactivation\naudience: {where: 'employee_count >= 100'}\n",
            ["dormant.yml", "key audience.where", "employee_count", "marts.customers"],
        ),
    ],
    ids=[
        "template-misspelt",
        "audience-key-misspelt",
        "top-key-misspelt",
        "range-key-misspelt",
        "where-column",
        "where-unknown",
    ],
)
def test_a_marketers_typo_is_one_line_naming_file_key_and_the_closest_names(
    cli_env: Settings, text: str, words: list[str]
) -> None:
    (cli_env.campaigns_dir / "dormant.yml").write_text(text, encoding="utf-8")
    line = fails("campaigns", "preview", "dormant", "--as-of", AS_OF.isoformat())
    assert all(word in line for word in words), line
    assert "Extra inputs are not permitted" not in line
    assert fails("campaigns", "send", "dormant", "--as-of", AS_OF.isoformat(), "--dry-run") == line


def test_list_marks_a_campaign_whose_template_does_not_exist(cli_env: Settings) -> None:
    (cli_env.campaigns_dir / "dormant.yml").write_text(
        "name: dormant\ntemplate: dormant_reactivaton\naudience: {ranks: [C]}\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["campaigns", "list"])
    assert result.exit_code == 1
    assert "renewal_reminder [email, enabled]" in result.output  # the others are still listed
    assert "dormant [email, enabled]" not in result.output
    [problem] = [line for line in result.output.splitlines() if "dormant.yml" in line]
    assert "key template" in problem and "did you mean dormant_reactivation?" in problem


@pytest.mark.parametrize("form", ["absolute", "relative"])
def test_a_path_is_not_a_campaign_name(cli_env: Settings, tmp_path: Path, form: str) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "evil.yml").write_text(
        "name: evil\nkind: call_list\naudience: {status: active}\nhypothesis: x\nnext_action: y\n", encoding="utf-8"
    )
    name = str(outside / "evil") if form == "absolute" else "../elsewhere/evil"
    for command in ("preview", "send"):
        line = fails("campaigns", command, name, "--as-of", AS_OF.isoformat())
        assert "is not a campaign name" in line and "evil" in line
    assert not (cli_env.var_dir / "call_lists").exists()  # nothing of the outside file ran


def test_each_call_list_campaign_gets_its_own_workbook(cli_env: Settings) -> None:
    """Two call lists in one run (as the daily run makes them) share the run id; each workbook holds its own."""
    (cli_env.campaigns_dir / "call_at_risk.yml").write_text(
        "name: call_at_risk\nkind: call_list\naudience: {status: active, ranks: [A, C]}\n"
        "hypothesis: 解約リスク\nnext_action: 利用状況の確認\n",
        encoding="utf-8",
    )
    for name in ("call_today", "call_at_risk"):
        invoke("campaigns", "send", name, "--as-of", AS_OF.isoformat(), "--run-id", "run-1")
    expected = {"call_at_risk": {"C1", "C4", "C6", "C7"}, "call_today": {"C1", "C2", "C3", "C6"}}
    for name, customers in expected.items():
        sheet = load_workbook(cli_env.var_dir / "call_lists" / f"{AS_OF.isoformat()}-{name}.xlsx").active
        listed = [row[1] for row in sheet.iter_rows(min_row=5, values_only=True) if row[1]]
        assert sorted(listed) == sorted(customers), name  # no other campaign's rows, nobody twice
        assert name in str(sheet["A1"].value)


def paste(line: str, user: str, monkeypatch: pytest.MonkeyPatch) -> Result:
    """Run a printed command as a shell would for `user`: split, "$USER" expanded, the program name dropped."""
    for variable in ("LOGNAME", "USER"):
        monkeypatch.setenv(variable, user)
    words = [os.path.expandvars(word) for word in shlex.split(line)]
    assert words[0] == "kizuna"
    return runner.invoke(app, words[1:])


def test_the_approval_hint_works_pasted_and_nobody_approves_their_own_run(
    cli_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIZUNA_APPROVAL_REQUIRED", "always")
    for variable in ("LOGNAME", "USER"):
        monkeypatch.setenv(variable, "taro")
    out = invoke("campaigns", "send", "renewal_reminder", "--as-of", AS_OF.isoformat(), "--run-id", "run-1")
    [hint] = [line.split("approves with: ", 1)[1] for line in out.splitlines() if "approves with: " in line]
    assert "someone other than taro" in out
    assert hint in invoke("campaigns", "holds") and "started by taro" in invoke("campaigns", "holds")

    own = paste(hint, "taro", monkeypatch)  # four eyes: the one who started the run may not approve it
    assert own.exit_code == 1 and "four eyes" in own.output and "KIZUNA_APPROVAL_ALLOW_SELF" in own.output
    assert paste(hint, "hanako", monkeypatch).exit_code == 0  # pasted as it was printed, by someone else
    out = invoke("campaigns", "send", "renewal_reminder", "--as-of", AS_OF.isoformat(), "--run-id", "run-1")
    assert "sent; 1 sent" in out


def test_a_setting_lets_one_person_approve_their_own_run(cli_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIZUNA_APPROVAL_REQUIRED", "always")
    monkeypatch.setenv("KIZUNA_APPROVAL_ALLOW_SELF", "true")
    for variable in ("LOGNAME", "USER"):
        monkeypatch.setenv(variable, "taro")
    invoke("campaigns", "send", "renewal_reminder", "--as-of", AS_OF.isoformat(), "--run-id", "run-1")
    invoke("campaigns", "approve", "run-1", "renewal_reminder", "--by", "Taro@example.co.jp")
    out = invoke("campaigns", "send", "renewal_reminder", "--as-of", AS_OF.isoformat(), "--run-id", "run-1")
    assert "sent; 1 sent" in out


def test_nothing_is_sent_after_a_failed_dbt_build(cli_env: Settings) -> None:
    """A real dbt build fails (its source table is missing); the marts of the previous build are still there, the
    gate passed, and yet neither an email nor a call list goes out until a build passes again."""
    from kizuna.transform import dbt_runner
    from tests.dbt.helpers import ensure_raw_schema

    with pytest.raises(dbt_runner.DbtBuildError):
        dbt_runner.build(cli_env, AS_OF, select="stg_crm__customers")
    for name in ("renewal_reminder", "call_today"):
        line = fails("campaigns", "send", name, "--as-of", AS_OF.isoformat(), "--run-id", "run-1")
        assert "the latest dbt build failed at 20" in line and "UTC" in line and "stg_crm__customers" in line, line
    assert not list(cli_env.outbox_dir.glob("*.eml")) and not (cli_env.var_dir / "call_lists").exists()

    with connect(cli_env.warehouse) as con:
        ensure_raw_schema(con)  # the missing source is back: the same build passes
    dbt_runner.build(cli_env, AS_OF, select="+int_months stg_crm__customers stg_crm__contacts")
    assert "sent; 1 sent" in invoke("campaigns", "send", "renewal_reminder", "--as-of", AS_OF.isoformat())
