"""Campaign selection and the send ledger on hand-built marts with known answers."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from kizuna.campaigns import holds
from kizuna.campaigns.run import run_campaign
from kizuna.campaigns.select import select_recipients
from kizuna.campaigns.spec import Campaign, CampaignFileError, Frequency, load_campaign, load_campaigns
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.email.message import OutgoingMessage
from kizuna.email.outbox import OutboxBackend
from kizuna.email.render import MissingVariableError
from kizuna.quality import recipients as send_gate
from kizuna.quality.gate import GateNotPassedError, GateVerdict, record_verdict
from kizuna.quality.recipients import RecipientsCheckError, check_recipients
from kizuna.quality.validate import CheckResult
from tests.campaigns.conftest import record_passing_build
from tests.conftest import record_passing_gate

AS_OF = dt.date(2026, 11, 23)

# customer_id, name, status, current_mrr, tenure_months, contract_term_months, owner_email, rank, products_held,
# plan_usage_ratio, days_since_last_touch, churned_month
CUSTOMERS = [
    ("C1", "株式会社一号", "active", 80000, 24, 12, None, "A", "Analytics, CRM Suite", 0.95, 10, None),
    ("C2", "二号商事株式会社", "active", 30000, 5, 12, None, "B", "CRM Suite", 0.50, 40, None),
    ("C3", "三号株式会社", "active", 50000, 13, 12, None, "B", "CRM Suite", 0.85, 95, None),
    ("C4", "四号株式会社", "active", 10000, 40, 1, None, "C", "CRM Suite", 0.20, 120, None),
    ("C5", "五号株式会社", "churned", 0, 12, 12, None, "C", "", None, 200, "2026-08-01"),
    ("C6", "六号株式会社", "active", 90000, 30, 12, "sato@kizuna-demo.example", "A", "CRM Suite", 0.70, 3, None),
    ("C7", "七号株式会社", "active", 20000, 8, 12, None, "C", "CRM Suite", 0.10, 100, None),
]
# customer_id, renewal_on offset days, contract_term_months
RENEWALS = [("C1", 30, 12), ("C2", 59, 12), ("C3", 61, 12), ("C4", 10, 1), ("C6", 5, 12), ("C7", 20, 12)]
# contact_id, customer_id, email, name, role, is_primary, opted_in, locale
CONTACTS = [
    ("P1", "C1", "ichi@example.co.jp", "一号 太郎", "決裁者", True, True, "ja"),
    ("P1b", "C1", "ichi-2@example.co.jp", "一号 次郎", "経理", False, True, "ja"),
    ("P2", "C2", "ni@example.co.jp", "二号 花子", "担当者", True, False, None),
    ("P3", "C3", "san@example.co.jp", "三号 一郎", "担当者", True, True, "ja"),
    ("P4", "C4", "yon@example.co.jp", "四号 三郎", "決裁者", True, True, "ja"),
    ("P5", "C5", "go@example.co.jp", "五号 二郎", "決裁者", True, True, "ja"),
    ("P6", "C6", "not-an-email", "六号 四郎", "決裁者", True, True, "en"),
    ("P7", "C7", "ICHI@example.co.jp", "七号 五郎", "担当者", True, True, "ja"),
]
# customer_id, signal, first_seen days ago
SIGNALS = [("C3", "near_plan_limit", 2), ("C1", "near_plan_limit", 30), ("C4", "usage_drop", 1)]


def build_marts(path: Path) -> None:
    """The marts selection reads, as dbt would leave them (only the columns selection and templates use)."""
    with connect(path) as con:
        con.execute("CREATE SCHEMA marts")
        record_passing_gate(con)
        record_passing_build(con, AS_OF)
        con.execute(
            "CREATE TABLE marts.customers (customer_id VARCHAR, name VARCHAR, status VARCHAR, "
            "current_mrr DECIMAL(18,2), tenure_months INTEGER, contract_term_months INTEGER, owner_email VARCHAR, "
            "rank VARCHAR, products_held VARCHAR, plans_held VARCHAR, plan_usage_ratio DOUBLE, "
            "days_since_last_touch INTEGER, churned_month DATE)"
        )
        con.executemany(
            "INSERT INTO marts.customers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'CRM Suite Standard', ?, ?, ?)", CUSTOMERS
        )
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
        con.executemany("INSERT INTO marts.contacts VALUES (?, ?, lower(?), ?, ?, ?, ?, ?)", CONTACTS)
        con.execute(
            "CREATE TABLE marts.customer_signals (customer_id VARCHAR, signal VARCHAR, first_seen_on DATE, "
            "signal_detail VARCHAR, signal_value DOUBLE, signal_threshold DOUBLE)"
        )
        con.executemany(
            "INSERT INTO marts.customer_signals (customer_id, signal, first_seen_on, signal_detail) VALUES (?, ?, ?, ?)",
            [(c, sig, AS_OF - dt.timedelta(days=d), f"{sig} for {c}") for c, sig, d in SIGNALS],
        )


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
    """customer -> (contact, exclusion reason or None) across recipients and exclusions of one run."""
    with connect(settings.warehouse) as con:
        rows = con.execute(
            "SELECT customer_id, contact_id, NULL FROM ops.campaign_recipients WHERE run_id = ? UNION ALL "
            "SELECT customer_id, contact_id, exclusion_reason FROM ops.campaign_exclusions WHERE run_id = ?",
            [run_id, run_id],
        ).fetchall()
    return {customer: (contact, reason) for customer, contact, reason in rows}


def test_audience_and_every_exclusion_reason(marts_settings: Settings) -> None:
    with connect(marts_settings.warehouse) as con:
        selection = select_recipients(con, renewal(), "r1", AS_OF)
    got = recipients(marts_settings, "r1")
    # C3 renews in 61 days, C4 is month-to-month, C5 churned: not in the audience at all.
    # (C6 has an owner, but its address is checked first.)
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
        selection = select_recipients(con, renewal(max_recipients=2, owner_policy="ignore"), "r1", AS_OF)
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
        rows = con.execute(
            "SELECT contact_id, NULL FROM ops.campaign_recipients UNION ALL "
            "SELECT contact_id, exclusion_reason FROM ops.campaign_exclusions ORDER BY 1"
        ).fetchall()
    # tenure >= 20 and MRR >= 50,000: C1 (both contacts) and C6 (owned: excluded before the email is looked at).
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
        (
            "name: x\ntemplate: t\nunknown_key: 1\n",
            "key unknown_key: unknown key 'unknown_key' (valid: audience, contacts,",
        ),
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
    assert {c.kind for c in campaigns} == {"email", "call_list"}
    for campaign in campaigns:
        if campaign.kind == "email":
            assert campaign.template and (settings.templates_dir / campaign.template / "meta.yml").exists()


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
    with pytest.raises(GateNotPassedError, match=r"failed the quality gate.*\(checked at 20\d\d-.* UTC\)"):
        run_campaign(marts_settings, renewal(), "r1", AS_OF)
    assert not list(marts_settings.outbox_dir.glob("*.eml"))


def test_nothing_is_sent_while_the_latest_build_never_finished(marts_settings: Settings) -> None:
    """A build killed midway (or still running) leaves its record 'running': its marts may be half-built."""
    from kizuna.transform import builds

    with connect(marts_settings.warehouse) as con:
        builds.start(con, AS_OF)
    with pytest.raises(builds.BuildNotPassedError, match="never finished"):
        run_campaign(marts_settings, renewal(), "r1", AS_OF)
    with connect(marts_settings.warehouse) as con:
        con.execute("DROP TABLE ops.dbt_builds")
    with pytest.raises(builds.BuildNotPassedError, match="no dbt build is recorded"):
        run_campaign(marts_settings, renewal(), "r1", AS_OF)
    assert not list(marts_settings.outbox_dir.glob("*.eml"))


def select(settings: Settings, run_id: str = "r1", **overrides: object) -> dict[str, tuple[str | None, str | None]]:
    campaign = Campaign.model_validate({"name": "test_campaign", "template": "renewal_reminder", **overrides})
    with connect(settings.warehouse) as con:
        select_recipients(con, campaign, run_id, AS_OF, settings)
    return recipients(settings, run_id)


@pytest.mark.parametrize(
    ("audience", "expected"),
    [
        ({"ranks": ["A"]}, {"C1", "C6"}),
        ({"products_held": ["Analytics"]}, {"C1"}),
        ({"products_not_held": ["Analytics"]}, {"C2", "C3", "C4", "C6", "C7"}),
        ({"plan_usage_ratio": {"min": 0.8}}, {"C1", "C3"}),
        ({"days_since_last_touch": {"min": 90}, "ranks": ["C"]}, {"C4", "C7"}),
        ({"signals": [{"name": "near_plan_limit", "within_days": 7}]}, {"C3"}),
        ({"signals": [{"name": "near_plan_limit", "within_days": 60}]}, {"C1", "C3"}),
        ({"status": "churned", "churned_within_days": {"min": 30, "max": 180}}, {"C5"}),
        ({"status": "churned", "churned_within_days": {"max": 30}}, set()),
        ({"tenure_months": {"max": 6}}, {"C2"}),
        ({"contract_term_months": [1]}, {"C4"}),
        ({"mrr": {"min": 60000}}, {"C1", "C6"}),
        ({"plans": ["CRM Suite Standard"], "ranks": ["A"]}, {"C1", "C6"}),
        ({"plans": ["CRM Suite Enterprise"]}, set()),
    ],
    ids=[
        "ranks",
        "products-held",
        "products-not-held",
        "plan-usage",
        "dormant-c",
        "signal-7d",
        "signal-60d",
        "churned-1-6-months",
        "churned-too-recently",
        "tenure",
        "contract-term",
        "mrr",
        "plans",
        "plans-none",
    ],
)
def test_audience_filters(marts_settings: Settings, audience: dict, expected: set[str]) -> None:
    got = select(marts_settings, audience=audience, owner_policy="ignore")
    assert set(got) == expected


def test_reasons_say_which_rule_matched_with_its_value(marts_settings: Settings) -> None:
    select(marts_settings, audience={"ranks": ["A"], "plan_usage_ratio": {"min": 0.9}})
    with connect(marts_settings.warehouse) as con:
        reasons = con.execute("SELECT reasons FROM ops.campaign_recipients WHERE customer_id = 'C1'").fetchone()[0]
    assert json.loads(reasons) == {"status": "active", "plan_usage_ratio": 0.95, "rank": "A", "lawful_basis": "consent"}


def test_contacts_by_role(marts_settings: Settings) -> None:
    got = select(marts_settings, audience={"ranks": ["A"]}, contacts={"roles": ["経理"]}, owner_policy="ignore")
    assert got == {"C1": ("P1b", None), "C6": (None, "no_contact")}


@pytest.mark.parametrize(
    ("policy", "reason", "cc", "sender"),
    [
        ("exclude", "owner_policy", None, None),
        ("owner_digest", "owner_policy", None, None),
        ("cc_owner", None, "sato@kizuna-demo.example", None),
        ("send_from_owner", None, None, "sato@kizuna-demo.example"),
        ("ignore", None, None, None),
    ],
    ids=["exclude", "owner-digest", "cc-owner", "send-from-owner", "ignore"],
)
def test_owner_policies(marts_settings: Settings, policy: str, reason: str | None, cc: str | None, sender: str | None):
    with connect(marts_settings.warehouse) as con:
        con.execute("UPDATE marts.contacts SET email = 'roku@example.co.jp' WHERE contact_id = 'P6'")
    got = select(marts_settings, audience={"ranks": ["A"]}, owner_policy=policy)
    assert got["C6"] == ("P6", reason)
    assert got["C1"] == ("P1", None)  # no owner: the policy does not touch it
    if reason is None:
        with connect(marts_settings.warehouse) as con:
            row = con.execute("SELECT cc_email, from_email FROM ops.campaign_recipients WHERE customer_id = 'C6'")
            assert row.fetchone() == (cc, sender)


def test_owner_policy_reaches_the_message(marts_settings: Settings) -> None:
    with connect(marts_settings.warehouse) as con:
        con.execute("UPDATE marts.contacts SET email = 'roku@example.co.jp' WHERE contact_id = 'P6'")
    run_campaign(marts_settings, renewal(owner_policy="cc_owner"), "r1", AS_OF)
    [eml] = [p for p in marts_settings.outbox_dir.glob("*.eml") if "roku@example.co.jp" in p.read_text()]
    assert "Cc: sato@kizuna-demo.example" in eml.read_text()


def test_holdout_is_deterministic_recorded_and_never_sent(marts_settings: Settings) -> None:
    with connect(marts_settings.warehouse) as con:
        con.execute("UPDATE marts.contacts SET is_marketing_opted_in = true")
        con.execute(
            "INSERT INTO marts.customers SELECT 'H' || i, 'holdout test ' || i, 'active', 1000, 12, 12, "
            "NULL, 'B', 'CRM Suite', 'CRM Suite Standard', 0.5, 5, NULL FROM range(400) t(i)"
        )
        con.execute(
            "INSERT INTO marts.contacts SELECT 'HP' || i, 'H' || i, 'h' || i || '@example.co.jp', NULL, "
            "NULL, true, true, 'ja' FROM range(400) t(i)"
        )
    first = select(marts_settings, "r1", audience={"ranks": ["B"]}, holdout_percent=25)
    again = select(marts_settings, "r2", audience={"ranks": ["B"]}, holdout_percent=25)
    with connect(marts_settings.warehouse) as con:
        variants = dict(
            con.execute(
                "SELECT variant, count(*) FROM ops.campaign_recipients WHERE run_id = 'r1' GROUP BY 1"
            ).fetchall()
        )
        same = con.execute(
            "SELECT count(*) FROM ops.campaign_recipients a JOIN ops.campaign_recipients b "
            "USING (customer_id) WHERE a.run_id = 'r1' AND b.run_id = 'r2' "
            "AND a.variant <> b.variant"
        ).fetchone()[0]
    assert set(first) == set(again)
    assert 70 <= variants["holdout"] <= 130  # 25% of 402, give or take chance
    assert same == 0  # the same customer is in the same group every run
    # Holdout contacts are recorded but never claimed nor sent.
    with connect(marts_settings.warehouse) as con:
        con.execute(
            "INSERT INTO marts.subscription_renewals SELECT 'S-' || customer_id, customer_id, 'CRM Suite', "
            "'Standard', 1000, 'JPY', 12, DATE '2026-12-20', 27 FROM marts.customers WHERE customer_id LIKE 'H%'"
        )
    campaign = renewal(
        name="test_campaign",
        holdout_percent=25,
        owner_policy="ignore",
        audience={"status": "active", "ranks": ["B"], "renewal_within_days": 60},
    )
    summary = run_campaign(marts_settings, campaign, "r3", AS_OF)
    with connect(marts_settings.warehouse) as con:
        treatment, holdout, claimed_holdouts = con.execute(
            "SELECT count(*) FILTER (WHERE variant = 'treatment'), count(*) FILTER (WHERE variant = 'holdout'), "
            "(SELECT count(*) FROM ops.send_ledger l JOIN ops.campaign_recipients r USING (message_key) "
            " WHERE r.run_id = 'r3' AND r.variant = 'holdout') "
            "FROM ops.campaign_recipients WHERE run_id = 'r3'"
        ).fetchone()
    assert summary.holdout == holdout > 0 and summary.sent == treatment > 0
    assert claimed_holdouts == 0


def test_frequency_cap_across_campaigns(marts_settings: Settings) -> None:
    capped = marts_settings.model_copy(update={"frequency_max_emails": 1, "frequency_days": 7})
    first = run_campaign(capped, renewal(), "r1", AS_OF)
    assert first.sent == 1  # P1
    other = Campaign.model_validate(
        {"name": "another", "template": "renewal_reminder", "audience": {"ranks": ["A"]}, "owner_policy": "ignore"}
    )
    with connect(marts_settings.warehouse) as con:
        select_recipients(con, other, "r2", AS_OF, capped)
    got = recipients(marts_settings, "r2")
    assert got["C1"] == ("P1", "frequency_cap")
    # A campaign may be stricter than the global cap, never looser.
    loose = other.model_copy(update={"frequency": Frequency(max_emails=5, days=1)})
    with connect(marts_settings.warehouse) as con:
        select_recipients(con, loose, "r3", AS_OF, capped)
    assert recipients(marts_settings, "r3")["C1"] == ("P1", "frequency_cap")


def add_renewing_customers(settings: Settings, count: int) -> None:
    """`count` more active customers H0, H1, ... renewing in i % 60 days, each with one opted-in primary contact."""
    with connect(settings.warehouse) as con:
        con.execute(
            "INSERT INTO marts.customers SELECT 'H' || i, 'holdout test ' || i, 'active', 1000, 12, 12, "
            "NULL, 'B', 'CRM Suite', 'CRM Suite Standard', 0.5, 5, NULL FROM range(?) t(i)",
            [count],
        )
        con.execute(
            "INSERT INTO marts.contacts SELECT 'HP' || i, 'H' || i, 'h' || i || '@example.co.jp', NULL, "
            "NULL, true, true, 'ja' FROM range(?) t(i)",
            [count],
        )
        con.execute(
            "INSERT INTO marts.subscription_renewals SELECT 'S-H' || i, 'H' || i, 'CRM Suite', 'Standard', 1000, "
            "'JPY', 12, ?::DATE + (i % 60)::INTEGER, i % 60 FROM range(?) t(i)",
            [AS_OF, count],
        )


def test_max_recipients_caps_the_holdout_to_its_share_of_the_same_ranking(marts_settings: Settings) -> None:
    add_renewing_customers(marts_settings, 400)
    campaign = renewal(name="test_campaign", holdout_percent=25, max_recipients=30, owner_policy="ignore")
    with connect(marts_settings.warehouse) as con:
        selection = select_recipients(con, campaign, "r1", AS_OF, marts_settings)
        rows = con.execute(
            "SELECT variant, NULL, days_to_renewal, customer_id FROM ops.campaign_recipients WHERE run_id = 'r1' "
            "UNION ALL SELECT variant, exclusion_reason, days_to_renewal, customer_id FROM ops.campaign_exclusions "
            "WHERE run_id = 'r1' AND exclusion_reason = 'over_cap'"
        ).fetchall()
    # 25% holdout: for 30 treated, round(30 × 25 / 75) = 10 held out.
    assert (selection.selected, selection.holdout) == (30, 10)
    for variant, cap in (("treatment", 30), ("holdout", 10)):
        kept = sorted((days, customer) for v, reason, days, customer in rows if v == variant and reason is None)
        over = sorted((days, customer) for v, reason, days, customer in rows if v == variant and reason)
        assert len(kept) == cap and len(over) > 50, variant
        assert kept[-1] < over[0], variant  # both groups are the soonest renewals of their variant
        assert kept[-1][0] <= 10, variant  # of 60 days, both keep the first few


RANKED_BY_NUMBERING = """
SELECT variant, contact_id FROM (
    SELECT *, row_number() OVER (PARTITION BY variant ORDER BY days_to_renewal NULLS LAST, customer_id, contact_id) AS n
    FROM (SELECT variant, days_to_renewal, customer_id, contact_id FROM ops.campaign_recipients WHERE run_id = 'r1'
          UNION ALL
          SELECT variant, days_to_renewal, customer_id, contact_id FROM ops.campaign_exclusions
          WHERE run_id = 'r1' AND exclusion_reason = 'over_cap'))
WHERE n <= CASE variant WHEN 'treatment' THEN ? ELSE ? END"""


@pytest.mark.parametrize(
    ("audience", "holdout_percent", "holdout_cap"),
    [
        ({"status": "active", "renewal_within_days": 60, "contract_term_months": [12]}, 25, 10),
        ({"status": "active", "tenure_months": {"min": 12}}, 25, 10),
        ({"status": "active", "renewal_within_days": 60, "contract_term_months": [12]}, 1, 0),
    ],
    ids=["renewals-sharing-days", "monthly-no-renewal-day", "holdout-cap-zero"],
)
def test_the_cap_keeps_what_numbering_each_group_in_ranking_order_keeps(
    marts_settings: Settings, audience: dict, holdout_percent: int, holdout_cap: int
) -> None:
    add_renewing_customers(marts_settings, 400)  # 400 renewals over 60 days: many share a day
    campaign = renewal(
        name="test_campaign",
        audience=audience,
        holdout_percent=holdout_percent,
        max_recipients=30,
        owner_policy="ignore",
    )
    with connect(marts_settings.warehouse) as con:
        selection = select_recipients(con, campaign, "r1", AS_OF, marts_settings)
        kept = set(
            con.execute("SELECT variant, contact_id FROM ops.campaign_recipients WHERE run_id = 'r1'").fetchall()
        )
        numbered = set(con.execute(RANKED_BY_NUMBERING, [30, holdout_cap]).fetchall())
    assert (selection.selected, selection.holdout) == (30, holdout_cap)
    assert selection.excluded["over_cap"] > 300
    assert kept == numbered


def test_frequency_cap_excludes_heavily_mailed_holdout_contacts_too(marts_settings: Settings) -> None:
    add_renewing_customers(marts_settings, 40)
    capped = marts_settings.model_copy(update={"frequency_max_emails": 1, "frequency_days": 7})
    campaign = renewal(name="test_campaign", holdout_percent=50, owner_policy="ignore")
    with connect(marts_settings.warehouse) as con:
        before = select_recipients(con, campaign, "r1", AS_OF, capped)
        customer, contact, email = con.execute(
            "SELECT customer_id, contact_id, email FROM ops.campaign_recipients "
            "WHERE run_id = 'r1' AND variant = 'holdout' ORDER BY customer_id LIMIT 1"
        ).fetchone()
        # Another campaign mailed this contact yesterday: one email in 7 days is the cap.
        con.execute(
            "INSERT INTO ops.send_ledger (message_key, campaign, contact_id, email, occasion, run_id, state, "
            "claimed_at) VALUES ('k-other', 'another', ?, ?, '2026-11', 'r0', 'accepted', "
            "timezone('UTC', now()) - INTERVAL 1 DAY)",
            [contact, email],
        )
        after = select_recipients(con, campaign, "r2", AS_OF, capped)
        excluded = con.execute(
            "SELECT variant, exclusion_reason FROM ops.campaign_exclusions WHERE run_id = 'r2' AND customer_id = ?",
            [customer],
        ).fetchall()
        still_recipient = con.execute(
            "SELECT count(*) FROM ops.campaign_recipients WHERE run_id = 'r2' AND customer_id = ?", [customer]
        ).fetchone()[0]
    assert excluded == [("holdout", "frequency_cap")]
    assert still_recipient == 0  # so campaign_lift does not count it as held out
    assert after.holdout == before.holdout - 1 and after.selected == before.selected
    assert after.excluded["frequency_cap"] == 1


def test_the_holdout_moves_on_across_runs_as_the_treatment_does(marts_settings: Settings) -> None:
    add_renewing_customers(marts_settings, 400)
    campaign = renewal(name="test_campaign", holdout_percent=25, max_recipients=30, owner_policy="ignore")
    killed = marts_settings.model_copy(update={"sending_disabled": True})
    assert run_campaign(killed, campaign, "r0", AS_OF).status == "killed"
    first = run_campaign(marts_settings, campaign, "r1", AS_OF)
    second = run_campaign(marts_settings, campaign, "r2", AS_OF + dt.timedelta(days=1))

    def held_out(con: duckdb.DuckDBPyConnection, run_id: str, table: str = "ops.campaign_recipients") -> set[str]:
        reason = "AND exclusion_reason = 'already_held_out'" if table == "ops.campaign_exclusions" else ""
        rows = con.execute(
            f"SELECT contact_id FROM {table} WHERE run_id = ? AND variant = 'holdout' {reason}", [run_id]
        ).fetchall()
        return {row[0] for row in rows}

    with connect(marts_settings.warehouse) as con:
        held = {run_id: held_out(con, run_id) for run_id in ("r0", "r1", "r2")}
        moved_past = held_out(con, "r2", "ops.campaign_exclusions")
        select_recipients(con, campaign, "r2", AS_OF + dt.timedelta(days=1), marts_settings)  # the same run again
        rerun = held_out(con, "r2")
    # 25% holdout: round(30 × 25 / 75) = 10 held out per run, as 30 are sent.
    assert (first.sent, first.holdout, second.sent, second.holdout) == (30, 10, 30, 10)
    assert held["r1"] == held["r0"]  # r0 sent nothing, so it used up neither group
    assert not held["r2"] & held["r1"]  # the next contacts in line, as for the treatment
    assert moved_past == held["r1"]
    assert (second.excluded["already_sent"], second.excluded["already_held_out"]) == (30, 10)
    assert rerun == held["r2"]  # a re-run of a run never counts its own holdout against it


def test_suppressed_address_is_never_selected(marts_settings: Settings) -> None:
    with connect(marts_settings.warehouse) as con:
        con.execute(
            "CREATE TABLE ops.suppressions (email VARCHAR PRIMARY KEY, reason VARCHAR, source VARCHAR, "
            "suppressed_at TIMESTAMP, detail VARCHAR)"
        )
        con.execute(
            "INSERT INTO ops.suppressions VALUES ('ichi@example.co.jp', 'unsubscribe', 'sendgrid', now(), NULL)"
        )
    assert select(marts_settings, audience={"ranks": ["A"]}, owner_policy="ignore")["C1"] == ("P1", "suppressed")


def test_first_send_is_held_until_a_person_approves(marts_settings: Settings) -> None:
    strict = marts_settings.model_copy(update={"approval_required": "always"})
    held = run_campaign(strict, renewal(), "r1", AS_OF)
    assert (held.status, held.sent, held.selected) == ("held", 0, 1)
    assert "first send" in held.note
    assert not list(strict.outbox_dir.glob("*.eml"))
    with connect(strict.warehouse) as con:
        assert [h.run_id for h in holds.waiting_holds(con)] == ["r1"]
        assert con.execute("SELECT count(*) FROM ops.send_ledger").fetchone() == (0,)
        holds.decide(con, "r1", "renewal_reminder", "approved", "manager@example.co.jp")
    approved = run_campaign(strict, renewal(), "r1", AS_OF)
    assert (approved.status, approved.sent) == ("sent", 1)


def test_an_audience_far_from_the_previous_run_is_held(marts_settings: Settings) -> None:
    strict = marts_settings.model_copy(update={"approval_required": "always"})
    with connect(strict.warehouse) as con:
        con.execute("UPDATE marts.contacts SET is_marketing_opted_in = true")
        con.execute("UPDATE marts.contacts SET email = contact_id || '@example.co.jp'")
    small = renewal(owner_policy="ignore", max_recipients=1)
    run_campaign(strict, small, "r1", AS_OF)
    with connect(strict.warehouse) as con:
        holds.decide(con, "r1", "renewal_reminder", "approved", "manager")
    assert run_campaign(strict, small, "r1", AS_OF).sent == 1
    grown = run_campaign(strict, renewal(owner_policy="ignore"), "r2", AS_OF)  # 1 -> 3 contacts
    assert grown.status == "held" and "+200%" in grown.note
    with connect(strict.warehouse) as con:
        holds.decide(con, "r2", "renewal_reminder", "rejected", "manager")
    assert run_campaign(strict, renewal(owner_policy="ignore"), "r2", AS_OF).status == "rejected"


def test_kill_switch_stops_every_send(marts_settings: Settings) -> None:
    killed = run_campaign(marts_settings.model_copy(update={"sending_disabled": True}), renewal(), "r1", AS_OF)
    assert (killed.status, killed.sent) == ("killed", 0)
    assert not list(marts_settings.outbox_dir.glob("*.eml"))


def test_send_gate_catches_a_suppression_that_arrives_after_selection(marts_settings: Settings) -> None:
    with connect(marts_settings.warehouse) as con:
        select_recipients(con, renewal(), "r1", AS_OF, marts_settings)
        check_recipients(con, marts_settings, "r1", "renewal_reminder")  # clean: passes
        con.execute(
            "CREATE TABLE ops.suppressions (email VARCHAR PRIMARY KEY, reason VARCHAR, source VARCHAR, "
            "suppressed_at TIMESTAMP, detail VARCHAR)"
        )
        con.execute("INSERT INTO ops.suppressions VALUES ('ichi@example.co.jp', 'spamreport', 'sendgrid', now(), NULL)")
        with pytest.raises(RecipientsCheckError, match="is on the suppression list"):
            check_recipients(con, marts_settings, "r1", "renewal_reminder")


def test_send_gate_suite_built_once_gives_the_verdicts_a_fresh_one_gives(marts_settings: Settings) -> None:
    with connect(marts_settings.warehouse) as con:
        select_recipients(con, renewal(), "r1", AS_OF, marts_settings)
        send_gate._VALIDATORS.clear()
        passed = check_recipients(con, marts_settings, "r1", "renewal_reminder")
        con.execute(
            "CREATE TABLE ops.suppressions (email VARCHAR PRIMARY KEY, reason VARCHAR, source VARCHAR, "
            "suppressed_at TIMESTAMP, detail VARCHAR)"
        )
        con.execute("INSERT INTO ops.suppressions VALUES ('ichi@example.co.jp', 'spamreport', 'sendgrid', now(), NULL)")
        with pytest.raises(RecipientsCheckError) as reused:
            check_recipients(con, marts_settings, "r1", "renewal_reminder")
        assert len(send_gate._VALIDATORS) == 1  # the same suite: built once
        send_gate._VALIDATORS.clear()
        with pytest.raises(RecipientsCheckError) as fresh:
            check_recipients(con, marts_settings, "r1", "renewal_reminder")
        assert reused.value.failures == fresh.value.failures and reused.value.failures
        con.execute("DELETE FROM ops.suppressions")
        assert check_recipients(con, marts_settings, "r1", "renewal_reminder") == passed


def test_owner_digest_sends_the_owner_one_list_instead_of_mailing_the_customers(marts_settings: Settings) -> None:
    with connect(marts_settings.warehouse) as con:
        con.execute("UPDATE marts.contacts SET email = 'roku@example.co.jp' WHERE contact_id = 'P6'")
        con.execute("UPDATE marts.customers SET owner_email = 'sato@kizuna-demo.example' WHERE customer_id = 'C7'")
    campaign = renewal(owner_policy="owner_digest")
    summary = run_campaign(marts_settings, campaign, "r1", AS_OF)
    mails = {p.name: p.read_text() for p in marts_settings.outbox_dir.glob("*.eml")}
    to_owner = [m for m in mails.values() if "To: sato@kizuna-demo.example" in m]
    assert len(to_owner) == 1 and summary.sent == 2  # P1's reminder and one digest for C6 and C7
    assert not any("roku@example.co.jp" in m or "ichi@example.co.jp" in m.split("To:")[1][:40] for m in to_owner)
    with connect(marts_settings.warehouse) as con:
        context = json.loads(
            con.execute("SELECT context FROM ops.campaign_recipients WHERE variant = 'owner_digest'").fetchone()[0]
        )
        excluded = con.execute(
            "SELECT customer_id FROM ops.campaign_exclusions WHERE exclusion_reason = 'owner_policy' ORDER BY 1"
        ).fetchall()
    assert sorted(a["customer_id"] for a in context["accounts"]) == ["C6", "C7"]
    assert excluded == [("C6",), ("C7",)]
    again = run_campaign(marts_settings, campaign, "r2", AS_OF)  # same month: no second digest
    assert again.sent == 0 and again.excluded.get("already_sent") == 2


def test_relationship_basis_mails_customers_who_never_opted_out(marts_settings: Settings) -> None:
    """特定電子メール法: existing customers may be mailed without opt-in, never after opting out."""
    with connect(marts_settings.warehouse) as con:
        con.execute("ALTER TABLE marts.contacts ADD COLUMN marketing_consent VARCHAR")
        con.execute(
            "UPDATE marts.contacts SET marketing_consent = CASE WHEN is_marketing_opted_in THEN 'opted_in' "
            "ELSE 'unknown' END"
        )
        con.execute(
            "INSERT INTO marts.contacts VALUES ('P3b', 'C3', 'san-2@example.co.jp', NULL, NULL, false, "
            "false, 'ja', 'opted_out')"
        )
    consent = select(marts_settings, "r1", audience={"ranks": ["B"]}, contacts="all_opted_in", owner_policy="ignore")
    assert consent["C2"] == ("P2", "no_marketing_consent")
    relationship = marts_settings.model_copy(update={"lawful_basis": "relationship"})
    campaign = Campaign.model_validate(
        {
            "name": "test_campaign",
            "template": "renewal_reminder",
            "audience": {"ranks": ["B"]},
            "contacts": "all_opted_in",
            "owner_policy": "ignore",
        }
    )
    with connect(relationship.warehouse) as con:
        select_recipients(con, campaign, "r2", AS_OF, relationship)
        basis = dict(
            con.execute(
                "SELECT contact_id, json_extract_string(reasons, '$.lawful_basis') "
                "FROM ops.campaign_recipients WHERE run_id = 'r2'"
            ).fetchall()
        )
        check_recipients(con, relationship, "r2", "test_campaign")  # the send gate agrees
    got = recipients(relationship, "r2")
    assert basis == {"P2": "relationship", "P3": "consent"}  # recorded per contact
    assert "P3b" not in basis  # opted out: never, whatever the basis
    assert got["C2"] == ("P2", None)


def test_never_touched_counts_as_longer_ago_than_any_number_of_days(marts_settings: Settings) -> None:
    """A never-touched account (days_since_last_touch null) passes every minimum and fails every maximum."""
    with connect(marts_settings.warehouse) as con:
        con.execute("UPDATE marts.customers SET days_since_last_touch = NULL WHERE customer_id = 'C7'")
    dormant = select(marts_settings, audience={"ranks": ["C"], "days_since_last_touch": {"min": 90}})
    assert set(dormant) == {"C4", "C7"}
    assert set(select(marts_settings, "r2", audience={"ranks": ["C"], "days_since_last_touch": {"max": 150}})) == {"C4"}
    bounded = {"ranks": ["C"], "days_since_last_touch": {"min": 90, "max": 150}}
    assert set(select(marts_settings, "r3", audience=bounded)) == {"C4"}
    with connect(marts_settings.warehouse) as con:
        reasons = con.execute(
            "SELECT reasons FROM ops.campaign_recipients WHERE run_id = 'r1' AND customer_id = 'C7'"
        ).fetchone()
    assert reasons is not None and json.loads(reasons[0])["days_since_last_touch"] is None


def test_the_call_list_puts_a_never_touched_account_before_a_touched_one(marts_settings: Settings) -> None:
    from kizuna.campaigns.call_list import build_call_list

    with connect(marts_settings.warehouse) as con:
        con.execute("UPDATE marts.customers SET days_since_last_touch = NULL WHERE customer_id = 'C7'")
        con.execute("UPDATE marts.customers SET rank = 'C' WHERE customer_id = 'C2'")
        calls = Campaign.model_validate(
            {
                "name": "call_c",
                "kind": "call_list",
                "audience": {"ranks": ["C"], "where": "c.customer_id IN ('C2', 'C7')"},
            }
        )
        build_call_list(con, calls, "r1", AS_OF)
        order = con.execute("SELECT customer_id FROM ops.call_list WHERE run_id = 'r1' ORDER BY priority").fetchall()
    assert [r[0] for r in order] == ["C7", "C2"]  # same rank, no signals: never touched is the longest ago


def test_a_hold_from_before_four_eyes_can_still_be_decided(marts_settings: Settings) -> None:
    with connect(marts_settings.warehouse) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS ops")
        con.execute(  # the table as warehouses hold it from before requested_by was recorded
            """CREATE TABLE ops.campaign_holds (run_id VARCHAR NOT NULL, campaign VARCHAR NOT NULL,
               reason VARCHAR NOT NULL, selected BIGINT NOT NULL, previous_selected BIGINT, status VARCHAR NOT NULL,
               held_at TIMESTAMP NOT NULL, decided_at TIMESTAMP, decided_by VARCHAR, PRIMARY KEY (run_id, campaign))"""
        )
        con.execute(
            "INSERT INTO ops.campaign_holds VALUES ('r0', 'renewal_reminder', 'first send', 1, NULL, 'waiting', now(), NULL, NULL)"
        )
        assert holds.decide(con, "r0", "renewal_reminder", "approved", holds.current_user()).status == "approved"
        assert holds.hold(con, "r1", "renewal_reminder", "first send", 1, None, "taro").requested_by == "taro"
        with pytest.raises(holds.HoldError, match="four eyes"):
            holds.decide(con, "r1", "renewal_reminder", "approved", "TARO@example.co.jp", allow_self=False)
        assert holds.decide(con, "r1", "renewal_reminder", "rejected", "taro").status == "rejected"  # always allowed


def test_a_monthly_campaign_states_mrr_in_the_reporting_currency(marts_settings: Settings, tmp_path: Path) -> None:
    """marts.customers.current_mrr is in the reporting currency (dbt var reporting_currency): a monthly campaign's
    recipients carry that currency for the template's money filter, not yen whatever the setting."""
    project = tmp_path / "usd" / "dbt_project"
    project.mkdir(parents=True)
    text = (marts_settings.dbt_project_dir / "dbt_project.yml").read_text(encoding="utf-8")
    assert "reporting_currency:" in text
    (project / "dbt_project.yml").write_text(
        "\n".join(
            line.split(":")[0] + ": USD" if line.strip().startswith("reporting_currency:") else line
            for line in text.splitlines()
        ),
        encoding="utf-8",
    )
    usd = marts_settings.model_copy(update={"project_dir": project.parent})
    assert usd.dbt_project_dir == project
    monthly = Campaign.model_validate(
        {"name": "monthly_tips", "template": "renewal_reminder", "audience": {"status": "active", "ranks": ["A"]}}
    )
    with connect(usd.warehouse) as con:
        select_recipients(con, monthly, "r-usd", AS_OF, usd)
        currencies = con.execute(
            "SELECT DISTINCT currency FROM ops.campaign_recipients WHERE run_id = 'r-usd'"
        ).fetchall()
    assert currencies == [("USD",)]


def test_exclusions_hold_each_campaigns_latest_selection_only(marts_settings: Settings) -> None:
    """ops.campaign_exclusions does not grow with history: a selection replaces its campaign's earlier rows."""
    other = renewal(name="other_campaign", owner_policy="ignore")
    with connect(marts_settings.warehouse) as con:
        select_recipients(con, other, "r1", AS_OF, marts_settings)
        for run_id in ("r1", "r2", "r3"):
            latest = select_recipients(con, renewal(), run_id, AS_OF + dt.timedelta(days=int(run_id[1])))
        rows = con.execute(
            "SELECT campaign, run_id, count(*) FROM ops.campaign_exclusions GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        by_reason = dict(
            con.execute(
                "SELECT exclusion_reason, count(*) FROM ops.campaign_exclusions "
                "WHERE campaign = 'renewal_reminder' GROUP BY 1"
            ).fetchall()
        )
    assert [(campaign, run_id) for campaign, run_id, _ in rows] == [
        ("other_campaign", "r1"),
        ("renewal_reminder", "r3"),
    ]
    assert by_reason == latest.excluded  # the latest run's exclusions, all of them
