"""Stripe objects -> contract rows, pulled through the official client from the stand-in, figures by hand.

MRR = price per billing period (unit amount x quantity, or tiers, less recurring discounts) / months in the
period: month / interval_count, year / (12 x count), week x 52 / 12 / count, day x 365 / 12 / count, rounded
half away from zero to whole yen or cents. docs/sources.md documents the mapping these tests hold it to.
"""

from __future__ import annotations

import csv
import json
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from kizuna.connectors.base import ChangeSink, ConnectorError, PullOutcome
from kizuna.connectors.routing import load_routing
from kizuna.connectors.stripe import StripeConnector
from kizuna.core.contract import TABLES_BY_NAME
from kizuna.core.errors import SourceError
from kizuna.core.settings import Settings
from tests.connectors.test_stripe import at
from tests.standins.stripe_api import OBJECTS, StripeStandin, StripeState


@pytest.fixture
def stripe() -> Iterator[StripeStandin]:
    with StripeStandin() as standin:
        standin.state.clock = at("2026-11-20")
        standin.state.add_product("CRM Suite", id="prod_crm")
        standin.state.add_customer("顧客1株式会社", id="cus_1", metadata={"kizuna_customer_id": "C1"})
        yield standin


def pull(
    settings: Settings, standin: StripeStandin, table: str = "subscriptions", options: dict[str, Any] | None = None
) -> tuple[dict[str, dict[str, str]], set[str], PullOutcome]:
    """A first pull of one table into a ChangeSink; rows by key as the CSV the parser reads."""
    s = settings.model_copy(
        update={
            "stripe_api_key": SecretStr(standin.state.api_key),
            "stripe_api_base": standin.base,
            "connector_max_retries": 0,
        }
    )
    contract = TABLES_BY_NAME[table]
    sink = ChangeSink(contract, settings.var_dir / f"{table}.csv")
    outcome = StripeConnector(s, options or {}).pull(contract, None, sink)
    sink.close()
    with sink.path.open(encoding="utf-8", newline="") as fh:
        found = {row[contract.key or ""]: row for row in csv.DictReader(fh)}
    return found, sink.deleted, outcome


def subscribe(state: StripeState, price: str, quantity: int, name: str = "1", **kwargs: Any) -> str:
    """A one-item subscription sub_<name> with item si_<name>."""
    return state.add_subscription("cus_1", [(price, quantity)], id=f"sub_{name}", item_ids=[f"si_{name}"], **kwargs)


@pytest.mark.parametrize(
    ("interval", "count", "currency", "unit", "quantity", "mrr", "amount", "months"),
    [
        ("month", 1, "jpy", 3000, 27, "81000", "81000", "1"),
        ("year", 1, "jpy", 43200, 20, "72000", "864000", "12"),
        ("year", 1, "jpy", 100000, 1, "8333", "100000", "12"),  # 8,333.33 rounds to whole yen
        ("week", 1, "jpy", 1000, 3, "13000", "3000", ""),  # 3,000 x 52 / 12
        ("week", 2, "usd", 1999, 1, "43.31", "19.99", ""),  # 19.99 x 52 / 12 / 2 = 43.3116
        ("month", 3, "usd", 29900, 2, "199.33", "598", "3"),  # quarterly: 598.00 / 3
        ("day", 1, "jpy", 100, 1, "3042", "100", ""),  # 100 x 365 / 12 = 3,041.67
        ("year", 2, "usd", 120000, 1, "50", "1200", "24"),
    ],
    ids=["month", "year", "year-rounded", "week", "fortnight-usd", "quarter-usd", "day", "two-years-usd"],
)
def test_mrr_is_normalised_from_the_price_interval_and_quantity(
    settings: Settings,
    stripe: StripeStandin,
    interval: str,
    count: int,
    currency: str,
    unit: int,
    quantity: int,
    mrr: str,
    amount: str,
    months: str,
) -> None:
    price = stripe.state.add_price(
        "prod_crm", currency=currency, unit_amount=unit, interval=interval, interval_count=count
    )
    subscribe(stripe.state, price, quantity)
    row = pull(settings, stripe)[0]["si_1"]
    assert Decimal(row["mrr"]) == Decimal(mrr)
    assert Decimal(row["amount"]) == Decimal(amount)
    assert row["billing_period_months"] == months
    assert row["currency"] == currency.upper() and row["quantity"] == str(quantity)


def test_tiers_quantity_transforms_and_discounts(settings: Settings, stripe: StripeStandin) -> None:
    state = stripe.state
    graduated = state.add_price(
        "prod_crm",
        tiers=[{"up_to": 10, "unit_amount": 1000}, {"up_to": None, "unit_amount": 800, "flat_amount": 5000}],
        tiers_mode="graduated",
    )
    volume = state.add_price(
        "prod_crm", tiers=[{"up_to": 10, "unit_amount": 1000}, {"up_to": None, "unit_amount": 800}], tiers_mode="volume"
    )
    packs = state.add_price("prod_crm", unit_amount=5000, transform_quantity={"divide_by": 10, "round": "up"})
    plain = state.add_price("prod_crm", unit_amount=50000)
    small = state.add_price("prod_crm", unit_amount=10000)
    metered = state.add_price("prod_crm", unit_amount=10, usage_type="metered")
    subscribe(state, graduated, 15, "graduated")
    subscribe(state, volume, 15, "volume")
    subscribe(state, packs, 23, "packs")
    subscribe(state, plain, 1, "percent", discounts=[state.add_coupon(percent_off=20)])
    subscribe(state, plain, 1, "once", discounts=[state.add_coupon(percent_off=50, duration="once")])
    off = state.add_coupon(amount_off=6000, currency="jpy", duration="repeating")
    items = [(plain, 1), (small, 1), (metered, 0)]
    state.add_subscription("cus_1", items, id="sub_two", item_ids=["si_two_a", "si_two_b", "si_two_m"], discounts=[off])
    mrr = {key: Decimal(row["mrr"]) for key, row in pull(settings, stripe)[0].items()}
    assert mrr == {
        "si_graduated": 19000,  # 10 x 1,000 + 5 x 800 + 5,000 flat
        "si_volume": 12000,  # all 15 at 800
        "si_packs": 15000,  # 3 packs of 10
        "si_percent": 40000,
        "si_once": 50000,  # a one-off coupon does not change the rate
        "si_two_a": 45000,  # 6,000 off the invoice, spread over the items 50,000 : 10,000
        "si_two_b": 9000,
    }  # the metered item has no row: its revenue is usage, seen in invoices


def test_a_deleted_coupon_keeps_discounting_the_subscriptions_that_applied_it(
    settings: Settings, stripe: StripeStandin
) -> None:
    """Stripe: deleting a coupon does not affect customers who already applied it. $350 a year, 20% off."""
    state = stripe.state
    yearly = state.add_price("prod_crm", currency="usd", unit_amount=35000, interval="year")
    subscribe(state, yearly, 1, "sub_level", discounts=[state.add_coupon(percent_off=20, id="LAUNCH20")])
    subscribe(state, yearly, 1, "item_level")
    state.discount_item(
        "sub_item_level", "si_item_level", state.add_coupon(amount_off=7000, currency="usd", id="SEAT70")
    )
    before = {key: row["mrr"] for key, row in pull(settings, stripe)[0].items()}
    assert before == {"si_sub_level": "23.33", "si_item_level": "23.33"}  # 280.00 / 12
    state.delete_coupon("LAUNCH20")
    state.delete_coupon("SEAT70")

    after = {key: row["mrr"] for key, row in pull(settings, stripe)[0].items()}  # a full refresh, say

    assert after == before  # not 29.17: the customers still pay the discounted price


def get(standin: StripeStandin, path: str) -> dict[str, Any]:
    request = urllib.request.Request(standin.base + path, headers={"Authorization": f"Bearer {standin.state.api_key}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return dict(json.load(answer))


def test_the_stand_in_answers_with_every_field_of_stripes_examples(settings: Settings, stripe: StripeStandin) -> None:
    """The mapping tests read payloads of Stripe's real shape and size, fields kizuna ignores included."""
    state = stripe.state
    price = state.add_price("prod_crm", unit_amount=3000)
    subscribe(state, price, 3, discounts=[state.add_coupon(percent_off=10)])
    state.discount_item("sub_1", "si_1", state.add_coupon(amount_off=500, currency="jpy"))
    state.add_invoice("cus_1", amount=9000, tax=900, subscription="sub_1", item="si_1", id="in_1")
    sub = get(stripe, "/v1/subscriptions/sub_1?expand[]=customer&expand[]=discounts.source.coupon")
    item = get(stripe, "/v1/subscription_items/si_1?expand[]=discounts")
    invoice = get(stripe, "/v1/invoices/in_1")
    event = get(stripe, "/v1/events?limit=1")["data"][0]
    shown = {
        "subscription": sub,
        "customer": sub["customer"],
        "discount": sub["discounts"][0],
        "coupon": sub["discounts"][0]["source"]["coupon"],
        "subscription_item": item,
        "price": item["price"],
        "product": get(stripe, "/v1/products/prod_crm"),
        "invoice": invoice,
        "line_item": invoice["lines"]["data"][0],
        "event": event,
    }
    for kind, obj in shown.items():
        assert set(OBJECTS[kind]) <= set(obj), (kind, set(OBJECTS[kind]) - set(obj))
    assert len(json.dumps(sub)) > 4000  # several KB, as Stripe sends one subscription with its customer
    assert item["plan"]["amount"] == 3000 and item["discounts"][0]["subscription_item"] == "si_1"
    rows = pull(settings, stripe)[0]
    assert rows["si_1"]["mrr"] == "7600"  # 9,000 less 10% (8,100), less 500 on the item


@pytest.mark.parametrize(
    ("stripe_status", "changes", "status", "row_expected"),
    [
        ("trialing", {"trial_start": at("2026-11-15"), "trial_end": at("2026-11-29")}, "trialing", True),
        ("active", {"pause_collection": {"behavior": "void", "resumes_at": None}}, "paused", True),
        ("past_due", {}, "past_due", True),
        ("unpaid", {}, "past_due", True),
        ("paused", {"trial_start": at("2026-10-01"), "trial_end": at("2026-10-15")}, "trialing", True),
        ("incomplete", {}, None, False),
        ("incomplete_expired", {}, None, False),
    ],
    ids=["trialing", "collection-paused", "past-due", "unpaid", "trial-ended-unpaid", "incomplete", "expired"],
)
def test_statuses_map_to_the_contract(
    settings: Settings,
    stripe: StripeStandin,
    stripe_status: str,
    changes: dict[str, Any],
    status: str | None,
    row_expected: bool,
) -> None:
    price = stripe.state.add_price("prod_crm", unit_amount=3000)
    subscribe(stripe.state, price, 10, status=stripe_status, start=at("2026-10-01"))
    stripe.state.subscriptions["sub_1"].update(changes)
    rows = pull(settings, stripe)[0]
    assert ("si_1" in rows) is row_expected
    if row_expected:
        row = rows["si_1"]
        assert row["status"] == status
        assert row["mrr"] == "30000"  # a trial's rate after the trial; dbt counts 0 while trialing
        assert (row["start_date"], row["end_date"]) == ("2026-10-01", "")


def test_a_canceled_subscription_ends_with_its_reason_and_a_past_trial_is_its_own_period(
    settings: Settings, stripe: StripeStandin
) -> None:
    state = stripe.state
    price = state.add_price("prod_crm", unit_amount=3000)
    trial = (at("2026-09-01"), at("2026-09-15"))
    subscribe(state, price, 10, "after_trial", start=trial[0], trial=trial)
    subscribe(state, price, 5, "gone", start=at("2026-06-01"))
    state.cancel_subscription("sub_gone", at=at("2026-11-05"), feedback="too_expensive", comment="高い")
    subscribe(state, price, 5, "same_day", start=at("2026-11-20", 9))
    state.cancel_subscription("sub_same_day", at=at("2026-11-20", 15))
    subscribe(state, price, 5, "leaving", cancel_at=at("2027-03-01"))
    rows, deleted, outcome = pull(settings, stripe)
    assert outcome.snapshot
    paid, trial_row = rows["si_after_trial"], rows["si_after_trial@2026-09-01"]
    assert (trial_row["status"], trial_row["start_date"], trial_row["end_date"]) == (
        "trialing",
        "2026-09-01",
        "2026-09-15",
    )
    assert (paid["status"], paid["start_date"], paid["end_date"]) == ("active", "2026-09-15", "")
    gone = rows["si_gone"]
    assert (gone["status"], gone["end_date"], gone["cancel_reason"]) == ("canceled", "2026-11-05", "too_expensive")
    assert "si_same_day" not in rows and "si_same_day" in deleted  # live for no day: no row (end must follow start)
    assert (rows["si_leaving"]["status"], rows["si_leaving"]["end_date"]) == ("active", "2027-03-01")


def test_customer_ids_follow_the_configured_metadata_key(
    settings: Settings, stripe: StripeStandin, tmp_path: Path
) -> None:
    state = stripe.state
    state.add_customer("二号", id="cus_2", metadata={"crm_id": "hubspot-42"})
    state.add_customer("三号", id="cus_3")
    price = state.add_price("prod_crm", unit_amount=1000)
    for n in (1, 2, 3):
        state.add_subscription(f"cus_{n}", [(price, 1)], id=f"sub_{n}", item_ids=[f"si_{n}"])
    config = tmp_path / "sources.yaml"
    config.write_text(
        "tables:\n  subscriptions: stripe\nstripe:\n  customer_id_metadata_key: crm_id\n", encoding="utf-8"
    )
    options = load_routing(settings.model_copy(update={"sources_config": config})).options["stripe"]
    by_key = pull(settings, stripe, options=options)[0]
    assert {k: r["customer_id"] for k, r in by_key.items()} == {"si_1": "cus_1", "si_2": "hubspot-42", "si_3": "cus_3"}
    default = pull(settings, stripe)[0]
    assert default["si_1"]["customer_id"] == "C1"  # kizuna_customer_id by default


def test_invoices_map_status_money_and_service_period(settings: Settings, stripe: StripeStandin) -> None:
    state = stripe.state
    october = (at("2026-10-01", 0), at("2026-11-01", 0))
    common: dict[str, Any] = {"item": "si_x", "subscription": "sub_x", "period": october}
    state.add_invoice("cus_1", amount=30000, tax=3000, status="paid", id="in_paid", **common)
    state.add_invoice("cus_1", amount=1999, tax=160, currency="usd", status="open", id="in_usd", **common)
    state.add_invoice("cus_1", amount=30000, status="void", id="in_void", **common)
    state.add_invoice("cus_1", amount=30000, status="uncollectible", id="in_lost", **common)
    state.add_invoice("cus_1", amount=30000, tax=3000, status="paid", credited=33000, id="in_refunded", **common)
    state.add_invoice("cus_1", amount=30000, status="draft", id="in_draft")
    state.add_invoice("cus_1", amount=5000, status="paid", id="in_one_off")
    rows = pull(settings, stripe, "invoices")[0]
    assert {k: r["status"] for k, r in rows.items()} == {
        "in_paid": "paid",
        "in_usd": "open",
        "in_void": "void",
        "in_lost": "open",  # uncollectible: still owed
        "in_refunded": "refunded",  # credited in full after payment
        "in_one_off": "paid",
    }
    paid, usd = rows["in_paid"], rows["in_usd"]
    assert (paid["amount"], paid["tax"], paid["currency"], paid["customer_id"]) == ("30000", "3000", "JPY", "C1")
    assert (paid["subscription_id"], paid["period_start"], paid["period_end"]) == ("si_x", "2026-10-01", "2026-10-31")
    assert (Decimal(usd["amount"]), Decimal(usd["tax"]), usd["currency"]) == (Decimal("19.99"), Decimal("1.6"), "USD")
    assert (rows["in_one_off"]["subscription_id"], rows["in_one_off"]["period_start"]) == ("", "")


def test_customers_take_name_address_and_metadata_columns(settings: Settings, stripe: StripeStandin) -> None:
    stripe.state.add_customer(
        "",
        id="cus_2",
        email="billing@example.co.jp",
        address={"country": "JP", "state": "東京都"},
        metadata={"kizuna_customer_id": "C2", "owner_email": "tanaka@example.co.jp", "industry": "製造"},
    )
    rows = pull(settings, stripe, "customers")[0]
    assert rows["C2"]["name"] == "billing@example.co.jp"  # no name: the billing email
    assert (rows["C2"]["prefecture"], rows["C2"]["country"]) == ("東京都", "JP")
    assert (rows["C2"]["owner_email"], rows["C2"]["industry"]) == ("tanaka@example.co.jp", "製造")
    assert rows["C1"]["name"] == "顧客1株式会社"


def test_bad_options_and_unsupported_prices_are_named(settings: Settings, stripe: StripeStandin) -> None:
    with pytest.raises(SourceError) as unknown:
        pull(settings, stripe, options={"customer_id_field": "crm_id"})
    assert unknown.value.finding.column == "stripe.customer_id_field"
    with pytest.raises(SourceError, match="at most 100"):
        pull(settings, stripe, options={"page_size": 500})
    custom = stripe.state.add_price("prod_crm")  # pay-what-you-want: no unit amount
    subscribe(stripe.state, custom, 1, "custom")
    with pytest.raises(
        ConnectorError, match=r"stripe: subscriptions: subscription sub_custom: price price_\d+: no unit"
    ):
        pull(settings, stripe)


def test_later_pulls_end_removed_items_and_rename_in_place(settings: Settings, stripe: StripeStandin) -> None:
    state = stripe.state
    base = state.add_price("prod_crm", unit_amount=3000, nickname="Standard")
    addon = state.add_price(state.add_product("Analytics Add-on", id="prod_addon"), unit_amount=2000)
    state.add_subscription("cus_1", [(base, 10), (addon, 1)], id="sub_1", item_ids=["si_base", "si_addon"])
    s = settings.model_copy(
        update={"stripe_api_key": SecretStr(state.api_key), "stripe_api_base": stripe.base, "connector_max_retries": 0}
    )
    contract = TABLES_BY_NAME["subscriptions"]
    first = ChangeSink(contract, settings.var_dir / "first.csv")
    cursor = StripeConnector(s, {}).pull(contract, None, first).cursor
    first.close()
    assert set(cursor["items"]) == {"si_base", "si_addon"}  # the open periods the next pull compares with

    state.clock = at("2026-11-22")
    state.change_item("sub_1", "si_addon", remove=True)
    state.rename_product("prod_crm", "CRM Suite 2")
    second = ChangeSink(contract, settings.var_dir / "second.csv")
    outcome = StripeConnector(s, {}).pull(contract, cursor, second)
    second.close()
    assert not outcome.snapshot
    with second.path.open(encoding="utf-8", newline="") as fh:
        rows = {row["subscription_id"]: row for row in csv.DictReader(fh)}
    assert set(rows) == {"si_base", "si_addon"}  # no new period: nothing about the revenue of si_base changed
    assert (rows["si_addon"]["end_date"], rows["si_addon"]["cancel_reason"]) == ("2026-11-22", "item_removed")
    assert (rows["si_base"]["product"], rows["si_base"]["start_date"]) == ("CRM Suite 2", "2026-11-20")
    assert set(outcome.cursor["items"]) == {"si_base"}
