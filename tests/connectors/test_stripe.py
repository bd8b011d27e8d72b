"""The Stripe connector through kizuna's real ingest and gate, the official client talking to a stand-in.

Covers a first full pull, an incremental pull that fetches only what changed (and opens a new period on an
MRR change), a crash mid-pull followed by a resume, deletions, a cursor too old for Stripe's 30 days of
events, retries on 429/5xx/dropped connections, and the key staying out of logs, errors, files and the
warehouse. The demo round trip lives in test_stripe_roundtrip.py, the mapping in test_stripe_mapping.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest
from pydantic import SecretStr

from kizuna.connectors.base import ConnectorError
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.quality.gate import gate_and_publish
from kizuna.sources.ingest import stage_sources
from tests.conftest import write_csv
from tests.sources.test_ingest import raw_fingerprint
from tests.standins.stripe_api import StripeStandin, StripeState

AS_OF = dt.date(2026, 11, 23)
TOKYO = ZoneInfo("Asia/Tokyo")


def at(day: str, hour: int = 10) -> int:
    """Epoch seconds of a day (and hour) in Tokyo."""
    d = dt.date.fromisoformat(day)
    return int(dt.datetime(d.year, d.month, d.day, hour, tzinfo=TOKYO).timestamp())


def small_account(state: StripeState) -> None:
    """Three customers: a monthly subscription, a yearly one, a trial; four invoices."""
    state.clock = at("2026-11-02")
    crm = state.add_product("CRM Suite", id="prod_crm")
    monthly = state.add_price(crm, unit_amount=3000, nickname="Standard", id="price_std_month")
    yearly = state.add_price(crm, unit_amount=30000, interval="year", nickname="Standard", id="price_std_year")
    for n in (1, 2, 3):
        state.add_customer(f"顧客{n}株式会社", id=f"cus_{n}", metadata={"kizuna_customer_id": f"C{n}"})
    state.add_subscription("cus_1", [(monthly, 10)], id="sub_1", item_ids=["si_1"], start=at("2025-04-01", 9))
    state.add_subscription(
        "cus_2", [(yearly, 5)], id="sub_2", item_ids=["si_2"], start=at("2025-06-15", 9), metadata={"plan_limit": "5"}
    )
    state.add_subscription(
        "cus_3",
        [(monthly, 4)],
        id="sub_3",
        item_ids=["si_3"],
        status="trialing",
        start=at("2026-10-20"),
        trial=(at("2026-10-20"), at("2026-11-03")),
    )
    october = (at("2026-10-01", 9), at("2026-11-01", 9))
    state.add_invoice("cus_1", amount=30000, tax=3000, item="si_1", subscription="sub_1", period=october, id="in_1")
    year = (at("2026-06-15", 9), at("2027-06-15", 9))
    state.add_invoice("cus_2", amount=150000, tax=15000, item="si_2", subscription="sub_2", period=year, id="in_2")
    november = (at("2026-11-01", 9), at("2026-12-01", 9))
    state.add_invoice(
        "cus_1", amount=30000, tax=3000, status="open", item="si_1", subscription="sub_1", period=november, id="in_3"
    )
    state.add_invoice("cus_3", amount=0, status="draft", id="in_draft")


@pytest.fixture
def stripe() -> Iterator[StripeStandin]:
    with StripeStandin() as standin:
        small_account(standin.state)
        yield standin


def stripe_settings(settings: Settings, standin: StripeStandin, tables: str = "subscriptions,invoices") -> Settings:
    """Settings pulling `tables` from the stand-in; customers C1-C3 from a file unless routed too."""
    write_csv(
        settings.source_dir / "customers.csv",
        ["customer_id", "name"],
        [["C1", "顧客1株式会社"], ["C2", "顧客2株式会社"], ["C3", "顧客3株式会社"]],
    )
    return settings.model_copy(
        update={
            "table_sources": ",".join(f"{t}=stripe" for t in tables.split(",")),
            "stripe_api_key": SecretStr(standin.state.api_key),
            "stripe_api_base": standin.base,
            "connector_max_retries": 2,
            "connector_timeout_seconds": 5.0,
        }
    )


def load(settings: Settings) -> None:
    stage_sources(settings)
    gate_and_publish(settings, AS_OF)


def rows(settings: Settings, table: str, key: str, schema: str = "raw") -> dict[str, dict[str, Any]]:
    """Published rows (or, with schema raw_incoming, the rows the last ingest staged for the gate)."""
    with connect(settings.warehouse, read_only=True) as con:
        cur = con.execute(f"SELECT * EXCLUDE (_source_file, _source_row) FROM {schema}.{table}")
        names = [d[0] for d in cur.description]
        return {str(r[names.index(key)]): dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def stored_cursor(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, Any]:
    found = con.execute("SELECT cursor FROM connector_state.cursors WHERE table_name = ?", [table]).fetchone()
    assert found is not None
    return dict(json.loads(found[0]))


def cursor_of(settings: Settings, table: str) -> dict[str, Any]:
    with connect(settings.warehouse, read_only=True) as con:
        return stored_cursor(con, table)


def paths(standin: StripeStandin) -> list[str]:
    return [r.path for r in standin.state.requests]


def test_first_pull_lands_the_contract_rows_and_the_key_stays_in_the_client(
    settings: Settings, stripe: StripeStandin, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    import stripe as stripe_library

    s = stripe_settings(settings, stripe)
    caplog.set_level(logging.DEBUG)
    stripe_library.log = "debug"  # stripe-python's own console log too, as STRIPE_LOG=debug sets it
    try:
        load(s)
    finally:
        stripe_library.log = None
    key = stripe.state.api_key
    assert {r.authorization for r in stripe.state.requests} == {f"Bearer {key}"}
    outputs = caplog.text + capsys.readouterr().err
    assert "Request to Stripe api" in outputs and key not in outputs  # the library logged, without the key
    for path in settings.warehouse.parent.rglob("*"):  # warehouse (cursors included), pulled CSVs, reports
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
    subs = rows(s, "subscriptions", "subscription_id")
    assert set(subs) == {"si_1", "si_2", "si_3"}
    assert subs["si_1"]["customer_id"] == "C1"
    assert subs["si_1"]["start_date"] == dt.date(2025, 4, 1)
    assert (subs["si_1"]["mrr"], subs["si_1"]["amount"], subs["si_1"]["quantity"]) == (30000, 30000, 10)
    assert (subs["si_2"]["mrr"], subs["si_2"]["amount"], subs["si_2"]["billing_period_months"]) == (12500, 150000, 12)
    assert subs["si_2"]["contract_term_months"] == 12 and subs["si_2"]["plan_limit"] == 5
    assert (subs["si_1"]["product"], subs["si_1"]["plan"]) == ("CRM Suite", "Standard")
    assert subs["si_3"]["status"] == "trialing" and subs["si_3"]["mrr"] == 12000
    invoices = rows(s, "invoices", "invoice_id")
    assert set(invoices) == {"in_1", "in_2", "in_3"}  # the draft is not issued
    assert invoices["in_1"]["period_start"] == dt.date(2026, 10, 1)
    assert invoices["in_1"]["period_end"] == dt.date(2026, 10, 31)
    assert (invoices["in_1"]["amount"], invoices["in_1"]["tax"], invoices["in_1"]["status"]) == (30000, 3000, "paid")
    assert invoices["in_3"]["status"] == "open" and invoices["in_3"]["subscription_id"] == "si_1"
    assert invoices["in_2"]["issued_at"] == dt.datetime(2026, 11, 2, 1, 0)  # 10:00 in Tokyo, stored in UTC
    assert "/v1/subscriptions" in paths(stripe) and "/v1/invoices" in paths(stripe)


def test_incremental_pull_fetches_only_changes_and_opens_a_new_period(
    settings: Settings, stripe: StripeStandin
) -> None:
    s = stripe_settings(settings, stripe)
    load(s)
    state = stripe.state
    state.clock = at("2026-11-10")
    state.change_item("sub_1", "si_1", quantity=12)  # an upsell: a new period from Nov 10
    state.clock = at("2026-11-11")
    state.update_subscription("sub_3", status="active")  # the trial converted (on its last day, Nov 3)
    premium = state.add_price("prod_crm", unit_amount=5000, nickname="Premium", id="price_premium")
    state.add_customer("顧客4", id="cus_4", metadata={"kizuna_customer_id": "C1"})
    state.add_subscription("cus_4", [(premium, 2)], id="sub_4", item_ids=["si_4"])
    state.update_invoice("in_3", "invoice.paid", status="paid")
    state.requests.clear()

    load(s)

    fetched = paths(stripe)
    assert "/v1/subscriptions" not in fetched and "/v1/invoices" not in fetched  # nothing listed again
    assert sorted(set(fetched) - {"/v1/events"}) == [
        "/v1/invoices/in_3",
        "/v1/products/prod_crm",  # names of the changed subscriptions' products, once per pull
        "/v1/subscriptions/sub_1",
        "/v1/subscriptions/sub_3",
        "/v1/subscriptions/sub_4",
    ]
    subs = rows(s, "subscriptions", "subscription_id")
    closed, current = subs["si_1@2025-04-01"], subs["si_1"]
    assert (closed["start_date"], closed["end_date"], closed["mrr"]) == (
        dt.date(2025, 4, 1),
        dt.date(2026, 11, 10),
        30000,
    )
    assert (closed["status"], closed["cancel_reason"]) == ("canceled", "plan_change")
    assert (current["start_date"], current["end_date"], current["mrr"]) == (dt.date(2026, 11, 10), None, 36000)
    trial, paid = subs["si_3@2026-10-20"], subs["si_3"]
    assert (trial["status"], trial["end_date"]) == ("trialing", dt.date(2026, 11, 3))
    assert (paid["status"], paid["start_date"], paid["mrr"]) == ("active", dt.date(2026, 11, 3), 12000)
    assert (subs["si_4"]["customer_id"], subs["si_4"]["mrr"], subs["si_4"]["plan"]) == ("C1", 10000, "Premium")
    assert subs["si_2"]["mrr"] == 12500  # untouched, kept from the mirror
    assert rows(s, "invoices", "invoice_id")["in_3"]["status"] == "paid"

    state.requests.clear()
    stage_sources(s)  # nothing changed since: no object fetched, nothing moves
    assert set(paths(stripe)) == {"/v1/events"}
    with connect(s.warehouse, read_only=True) as con:
        moved = con.execute(
            "SELECT count(*) FROM (SELECT * EXCLUDE (_source_file, _source_row) FROM raw_incoming.subscriptions "
            "EXCEPT SELECT * EXCLUDE (_source_file, _source_row) FROM raw.subscriptions)"
        ).fetchone()
    assert moved == (0,)


def test_an_incremental_load_quarantines_only_the_record_the_gate_names(
    settings: Settings, stripe: StripeStandin
) -> None:
    """Rows carried over from earlier pulls and rows of this pull make one load: each row is one place.

    Issue 23: carried-over rows kept their old row numbers while this pull's rows were numbered from 2 again,
    and quarantine removed a valid new subscription along with the carried-over orphan of the same number.
    """
    s = stripe_settings(settings, stripe, "subscriptions")
    load(s)
    with connect(s.warehouse, read_only=True) as con:
        first = con.execute(
            "SELECT subscription_id, customer_id FROM raw.subscriptions WHERE _source_row = 2"
        ).fetchone()
    assert first is not None
    orphan_item, orphan_customer = first  # whichever Stripe listed first: the stand-in's order, not a guess
    # The CRM merged that customer away: its subscription, unchanged in Stripe, now references nobody.
    kept = [[c, f"顧客{c[1:]}株式会社"] for c in ("C1", "C2", "C3") if c != orphan_customer]
    write_csv(s.source_dir / "customers.csv", ["customer_id", "name"], [*kept, ["C4", "顧客4株式会社"]])
    state = stripe.state
    state.clock = at("2026-11-20")
    enterprise = state.add_price("prod_crm", unit_amount=90000, nickname="Enterprise", id="price_ent")
    state.add_customer("顧客4株式会社", id="cus_4", metadata={"kizuna_customer_id": "C4"})
    state.add_subscription("cus_4", [(enterprise, 1)], id="sub_4", item_ids=["si_4"])  # row 2 of this pull

    stage_sources(s)
    verdict = gate_and_publish(s, AS_OF)

    subs = rows(s, "subscriptions", "subscription_id")
    assert subs["si_4"]["mrr"] == 90000  # the valid new subscription is published
    assert orphan_item not in subs
    assert verdict.quarantined == {"subscriptions": 1}
    (orphans,) = [r for r in verdict.warnings if r.column == "customer_id"]
    assert orphans.unexpected_count == 1  # the gate says 1 row and moves 1 row
    (finding,) = orphans.findings
    stripe_sub = "sub_" + orphan_item.removeprefix("si_")
    assert str(finding).endswith(f"(found '{orphan_customer}') (stripe subscription {stripe_sub})"), finding
    with connect(s.warehouse, read_only=True) as con:
        quarantined = con.execute("SELECT source_row, record FROM quarantine.rows").fetchall()
        published = con.execute("SELECT subscription_id, _source_file, _source_row FROM raw.subscriptions").fetchall()
    assert [json.loads(record)["subscription_id"] for _, record in quarantined] == [orphan_item]
    assert quarantined[0][0] == finding.row
    # Every row names one line of one file, and that line holds the row: the table as this load staged it.
    assert len({(f, r) for _, f, r in published}) == len({r for _, _, r in published}) == len(published)
    (staged_csv,) = {f for _, f, _ in published}
    with open(staged_csv, encoding="utf-8", newline="") as fh:
        lines = list(csv.DictReader(fh))
    for subscription_id, _, row in published:
        assert lines[row - 2]["subscription_id"] == subscription_id
    assert lines[finding.row - 2]["_source_record"] == f"stripe subscription {stripe_sub}"


def test_a_crash_mid_pull_keeps_the_last_load_and_the_next_run_resumes(
    settings: Settings, stripe: StripeStandin
) -> None:
    s = stripe_settings(settings, stripe).model_copy(update={"connector_max_retries": 0})
    load(s)
    before, cursors_before = raw_fingerprint(s), cursor_of(s, "subscriptions")
    stripe.state.clock = at("2026-11-12")
    stripe.state.change_item("sub_2", "si_2", quantity=8)
    stripe.state.update_invoice("in_3", "invoice.voided", status="void")
    stripe.state.fail("drop", "/v1/invoices/in_3")  # the connection drops while invoices are fetched

    with pytest.raises(ConnectorError, match=r"stripe: invoice in_3: no answer from http://127\.0\.0\.1"):
        stage_sources(s)
    assert raw_fingerprint(s) == before  # the last good load, whole
    assert cursor_of(s, "subscriptions") == cursors_before  # subscriptions were pulled, but not committed

    stage_sources(s)  # the fault is gone: the same changes are pulled again from the old cursors
    subs = rows(s, "subscriptions", "subscription_id", "raw_incoming")
    assert subs["si_2"]["amount"] == 240000 and subs["si_2@2025-06-15"]["end_date"] == dt.date(2026, 11, 12)
    assert rows(s, "invoices", "invoice_id", "raw_incoming")["in_3"]["status"] == "void"


def test_deleted_records_leave_the_raw_tables(settings: Settings, stripe: StripeStandin) -> None:
    s = stripe_settings(settings, stripe, "customers,subscriptions,invoices")
    load(s)
    assert set(rows(s, "customers", "customer_id")) == {"C1", "C2", "C3"}
    state = stripe.state
    state.clock = at("2026-11-15")
    state.delete_customer("cus_2")  # Stripe cancels its subscription at once
    state.update_customer("cus_3", metadata={"kizuna_customer_id": "C3-new"})  # answers to another id now
    state.forget_subscription("sub_1")  # gone from Stripe: answers 404
    state.add_invoice("cus_1", amount=100, status="draft", id="in_draft2")
    state.delete_invoice("in_draft2")

    stage_sources(s)

    assert set(rows(s, "customers", "customer_id", "raw_incoming")) == {"C1", "C3-new"}
    subs = rows(s, "subscriptions", "subscription_id", "raw_incoming")
    assert "si_1" not in subs
    assert subs["si_3"]["customer_id"] == "C3-new"
    # the deleted customer's subscription stays, canceled (its revenue was real); the gate will set it
    # aside as referencing an unknown customer (docs/sources.md)
    assert (subs["si_2"]["customer_id"], subs["si_2"]["status"]) == ("C2", "canceled")
    assert subs["si_2"]["end_date"] == dt.date(2026, 11, 15)


def test_a_cursor_older_than_stripes_events_means_a_full_pull(
    settings: Settings, stripe: StripeStandin, caplog: pytest.LogCaptureFixture
) -> None:
    s = stripe_settings(settings, stripe, "subscriptions")
    load(s)
    with connect(s.warehouse) as con:
        stored = stored_cursor(con, "subscriptions")
        stored["checked_at"] -= 40 * 86400
        con.execute(
            "UPDATE connector_state.cursors SET cursor = ? WHERE table_name = 'subscriptions'", [json.dumps(stored)]
        )
    stripe.state.requests.clear()
    caplog.set_level(logging.INFO, logger="kizuna.connectors.stripe")
    stage_sources(s)
    assert "/v1/subscriptions" in paths(stripe)
    assert "the last pull was 40 days ago" in caplog.text and "snapshot" in caplog.text


def test_429_5xx_and_dropped_connections_are_retried(
    settings: Settings, stripe: StripeStandin, caplog: pytest.LogCaptureFixture
) -> None:
    s = stripe_settings(settings, stripe)
    state = stripe.state
    state.fail("429", "/v1/events", retry_after="0")
    state.fail("429", "/v1/subscriptions", page=1, retry_after=None)  # no Retry-After: exponential backoff
    state.fail("500", "/v1/subscriptions", page=1)
    state.fail("drop", "/v1/invoices", page=1)
    caplog.set_level(logging.INFO)
    result = stage_sources(s)
    assert {t.table for t in result.staged} >= {"subscriptions", "invoices"}
    assert (state.answered("429"), state.answered("500"), state.answered("drop")) == (2, 1, 1)
    assert "rate limited (429); waiting 0.0 s (Retry-After)" in caplog.text
    assert "(backoff) before retry 1 of 2" in caplog.text
    assert "Initiating retry 1" in caplog.text  # stripe-python's own retry of the 500


def test_rate_limits_that_do_not_end_fail_the_pull_by_name(settings: Settings, stripe: StripeStandin) -> None:
    s = stripe_settings(settings, stripe)
    stripe.state.fail("429", "/v1/subscriptions", times=10)
    with pytest.raises(ConnectorError, match=r"stripe: subscriptions page 1: still rate limited \(429\) after 2"):
        stage_sources(s)
    assert not (s.warehouse.exists() and raw_fingerprint(s))


def test_a_refused_key_names_the_setting_not_the_key(
    settings: Settings, stripe: StripeStandin, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk_test_" + "x" * 24
    s = stripe_settings(settings, stripe).model_copy(update={"stripe_api_key": SecretStr(wrong)})
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConnectorError) as refused:
        stage_sources(s)
    assert "stripe: events: the API key was refused (401)" in str(refused.value)
    assert "KIZUNA_STRIPE_API_KEY" in str(refused.value)
    assert stripe.state.requests[0].authorization == f"Bearer {wrong}"
    assert "xxxx" not in str(refused.value) + caplog.text


def test_a_missing_key_names_both_settings(settings: Settings, stripe: StripeStandin) -> None:
    s = stripe_settings(settings, stripe).model_copy(update={"stripe_api_key": None})
    with pytest.raises(ConnectorError, match=r"KIZUNA_STRIPE_API_KEY \(or KIZUNA_STRIPE_API_KEY_BLOCK"):
        stage_sources(s)
    assert stripe.state.requests == []
