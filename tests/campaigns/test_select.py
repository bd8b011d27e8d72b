"""Campaign selection and the send ledger on hand-built marts with known answers."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from kizuna.campaigns.run import run_campaign
from kizuna.campaigns.select import select_recipients
from kizuna.campaigns.spec import Campaign, CampaignFileError, load_campaign, load_campaigns
from kizuna.email.message import OutgoingMessage
from kizuna.email.outbox import OutboxBackend
from kizuna.email.render import MissingVariableError
from kizuna.quality.gate import GateNotPassedError, GateVerdict, record_verdict
from kizuna.quality.validate import CheckResult
from kizuna.settings import Settings
from kizuna.warehouse import connect
from tests.conftest import record_passing_gate

AS_OF = dt.date(2026, 11, 23)

# customer_id, name, status, current_mrr, tenure_months, contract_term_months
CUSTOMERS = [
    ("C1", "株式会社一号", "active", 80000, 24, 12),
    ("C2", "二号商事株式会社", "active", 30000, 5, 12),
    ("C3", "三号株式会社", "active", 50000, 13, 12),
    ("C4", "四号株式会社", "active", 10000, 40, 1),
    ("C5", "五号株式会社", "churned", 0, 12, 12),
    ("C6", "六号株式会社", "active", 90000, 30, 12),
    ("C7", "七号株式会社", "active", 20000, 8, 12),
]
# customer_id, renewal_on offset days, contract_term_months
RENEWALS = [("C1", 30, 12), ("C2", 59, 12), ("C3", 61, 12), ("C4", 10, 1), ("C6", 5, 12), ("C7", 20, 12)]
# contact_id, customer_id, email, name, is_primary, opted_in, locale
CONTACTS = [
    ("P1", "C1", "ichi@example.co.jp", "一号 太郎", True, True, "ja"),
    ("P1b", "C1", "ichi-2@example.co.jp", "一号 次郎", False, True, "ja"),
    ("P2", "C2", "ni@example.co.jp", "二号 花子", True, False, None),
    ("P4", "C4", "yon@example.co.jp", "四号 三郎", True, True, "ja"),
    ("P6", "C6", "not-an-email", "六号 四郎", True, True, "en"),
    ("P7", "C7", "ICHI@example.co.jp", "七号 五郎", True, True, "ja"),
]


def build_marts(path: Path) -> None:
    """The three marts selection reads, as dbt would leave them."""
    with connect(path) as con:
        con.execute("CREATE SCHEMA marts")
        record_passing_gate(con)
        con.execute(
            "CREATE TABLE marts.customers (customer_id VARCHAR, name VARCHAR, status VARCHAR, "
            "current_mrr DECIMAL(18,2), tenure_months INTEGER, contract_term_months INTEGER, owner_email VARCHAR)"
        )
        con.executemany("INSERT INTO marts.customers VALUES (?, ?, ?, ?, ?, ?, NULL)", CUSTOMERS)
        con.execute(
            "CREATE TABLE marts.subscription_renewals (subscription_id VARCHAR, customer_id VARCHAR, "
            "product VARCHAR, plan VARCHAR, mrr DECIMAL(18,2), currency VARCHAR, contract_term_months INTEGER, "
            "renewal_on DATE, days_to_renewal INTEGER)"
        )
        con.executemany(
            "INSERT INTO marts.subscription_renewals VALUES (?, ?, 'CRM Suite', 'Standard', 50000, 'JPY', ?, ?, ?)",
            [(f"S-{c}", c, term, AS_OF + dt.timedelta(days=d), d) for c, d, term in RENEWALS],
        )
        con.execute(
            "CREATE TABLE marts.contacts (contact_id VARCHAR, customer_id VARCHAR, email VARCHAR, "
            "contact_name VARCHAR, role VARCHAR, is_primary BOOLEAN, is_marketing_opted_in BOOLEAN, "
            "locale VARCHAR)"
        )
        con.executemany("INSERT INTO marts.contacts VALUES (?, ?, lower(?), ?, NULL, ?, ?, ?)", CONTACTS)


@pytest.fixture
def marts_settings(settings: Settings) -> Settings:
    build_marts(settings.warehouse)
    return settings


def renewal(**overrides: object) -> Campaign:
    base: dict[str, object] = {
        "name": "renewal_reminder",
        "template": "renewal_reminder",
        "audience": {"status": "active", "renewal_within_days": 60, "contract_term_months": [12]},
    }
    base.update(overrides)
    return Campaign.model_validate(base)


def recipients(settings: Settings, run_id: str) -> dict[str, tuple[str | None, str | None]]:
    with connect(settings.warehouse) as con:
        rows = con.execute(
            "SELECT customer_id, contact_id, exclusion_reason FROM ops.campaign_recipients WHERE run_id = ?", [run_id]
        ).fetchall()
    return {customer: (contact, reason) for customer, contact, reason in rows}


def test_audience_and_every_exclusion_reason(marts_settings: Settings) -> None:
    with connect(marts_settings.warehouse) as con:
        selection = select_recipients(con, renewal(), "r1", AS_OF)
    got = recipients(marts_settings, "r1")
    # C3 renews in 61 days, C4 is month-to-month, C5 churned: not in the audience at all.
    assert set(got) == {"C1", "C2", "C6", "C7"}
    assert got["C1"] == ("P1", None)  # primary only: P1b is not considered
    assert got["C2"] == ("P2", "no_marketing_consent")
    assert got["C6"] == ("P6", "invalid_email")
    assert got["C7"] == ("P7", "duplicate_email")  # same address as P1, case aside; C1 sorts first
    assert selection.selected == 1
    assert selection.excluded == {"no_marketing_consent": 1, "invalid_email": 1, "duplicate_email": 1}


def test_customer_without_a_contact_is_recorded(marts_settings: Settings) -> None:
    with connect(marts_settings.warehouse) as con:
        con.execute("DELETE FROM marts.contacts WHERE customer_id = 'C1'")
        select_recipients(con, renewal(), "r1", AS_OF)
    assert recipients(marts_settings, "r1")["C1"] == (None, "no_contact")


def test_cap_keeps_the_soonest_renewals(marts_settings: Settings) -> None:
    with connect(marts_settings.warehouse) as con:
        con.execute("UPDATE marts.contacts SET is_marketing_opted_in = true")
        con.execute("UPDATE marts.contacts SET email = 'roku@example.co.jp' WHERE contact_id = 'P6'")
        con.execute("UPDATE marts.contacts SET email = 'nana@example.co.jp' WHERE contact_id = 'P7'")
        selection = select_recipients(con, renewal(max_recipients=2), "r1", AS_OF)
    got = recipients(marts_settings, "r1")
    assert selection.selected == 2
    # Renewal in 5 (C6) and 20 (C7) days go first; 30 (C1) and 59 (C2) are over the cap.
    assert got["C6"][1] is None and got["C7"][1] is None
    assert got["C1"][1] == "over_cap" and got["C2"][1] == "over_cap"


def test_where_tenure_and_all_opted_in_contacts(marts_settings: Settings) -> None:
    campaign = renewal(
        contacts="all_opted_in",
        audience={
            "status": "active",
            "renewal_within_days": 60,
            "tenure_months": {"min": 20},
            "where": "c.current_mrr >= 50000",
        },
    )
    with connect(marts_settings.warehouse) as con:
        select_recipients(con, campaign, "r1", AS_OF)
        rows = con.execute("SELECT contact_id, exclusion_reason FROM ops.campaign_recipients ORDER BY 1").fetchall()
    # tenure >= 20 and MRR >= 50,000: C1 (both contacts) and C6.
    assert rows == [("P1", None), ("P1b", None), ("P6", "invalid_email")]


def test_send_once_per_key_across_runs(marts_settings: Settings) -> None:
    first = run_campaign(marts_settings, renewal(), "r1", AS_OF)
    second = run_campaign(marts_settings, renewal(), "r2", AS_OF + dt.timedelta(days=1))
    assert (first.selected, first.sent) == (1, 1)
    assert (second.selected, second.sent) == (0, 0) and second.excluded["already_sent"] == 1
    emls = list(marts_settings.outbox_dir.glob("*.eml"))
    assert len(emls) == 1
    assert "ichi@example.co.jp" in emls[0].read_text()


def test_missing_variable_in_template_releases_claims(marts_settings: Settings, tmp_path: Path) -> None:
    class CountingOutbox(OutboxBackend):
        calls = 0

        def send(self, message: OutgoingMessage) -> str:
            CountingOutbox.calls += 1
            return super().send(message)

    shutil.copytree(marts_settings.templates_dir, tmp_path / "templates")
    subject = tmp_path / "templates" / "renewal_reminder" / "subject.ja.txt.j2"
    subject.write_text(subject.read_text(encoding="utf-8").strip() + " {{ no_such_variable }}\n", encoding="utf-8")
    broken = marts_settings.model_copy(update={"project_dir": tmp_path})
    with pytest.raises(MissingVariableError, match="no_such_variable"):
        run_campaign(broken, renewal(), "r1", AS_OF, backend=CountingOutbox(marts_settings.outbox_dir))
    assert CountingOutbox.calls == 0
    with connect(marts_settings.warehouse) as con:
        assert con.execute("SELECT count(*) FROM ops.send_ledger").fetchone() == (0,)
    assert not list(marts_settings.outbox_dir.glob("*.eml"))
    # Fixed template, next run: the contact gets exactly one message.
    assert run_campaign(marts_settings, renewal(), "r2", AS_OF).sent == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ntemplate: t\naudience: {renewal_within_days: 400}\n", "key audience.renewal_within_days"),
        ("name: x\ntemplate: t\nunknown_key: 1\n", "key unknown_key: Extra inputs are not permitted"),
        ("name: x\ntemplate: t\naudience: {where: '1=1; DROP TABLE raw.customers'}\n", "key audience.where"),
        ("name: other\ntemplate: t\n", "must match the file name 'x'"),
        ("name: x\ntemplate: t\naudience: {tenure_months: {min: 5, max: 2}}\n", "key audience.tenure_months"),
    ],
    ids=["window-too-long", "unknown-key", "sql-injection", "name-mismatch", "min-over-max"],
)
def test_campaign_file_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CampaignFileError, match=r"x\.yml") as info:
        load_campaign(path)
    assert message in str(info.value)


def test_shipped_campaigns_load_and_name_existing_templates(settings: Settings) -> None:
    campaigns = load_campaigns(settings.campaigns_dir, enabled_only=False)
    assert "renewal_reminder" in {c.name for c in campaigns}
    for campaign in campaigns:
        assert (settings.templates_dir / campaign.template / "meta.yml").exists(), campaign.name


def test_nothing_is_sent_when_the_latest_load_failed_the_gate(marts_settings: Settings) -> None:
    failed = CheckResult(
        "raw_customers",
        "customers",
        "expect_column_values_to_be_unique",
        "customer_id",
        "duplicate value",
        "critical",
        False,
        1,
    )
    with connect(marts_settings.warehouse) as con:
        record_verdict(con, GateVerdict("99999999T999999999999Z-bad", [failed]))
    with pytest.raises(GateNotPassedError, match="failed the quality gate"):
        run_campaign(marts_settings, renewal(), "r1", AS_OF)
    assert not list(marts_settings.outbox_dir.glob("*.eml"))
