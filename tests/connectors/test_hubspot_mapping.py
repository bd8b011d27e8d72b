"""HubSpot fields -> contract columns: the demo data survives the round trip, and each rule says what it does."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from kizuna.connectors.hubspot_mapping import HubSpotMapping, HubSpotOptions
from kizuna.connectors.hubspot_values import full_name, locale, marketing_opt_in, parse_date, parse_timestamp
from kizuna.core.errors import SourceError
from kizuna.core.settings import Settings
from kizuna.demo.generate import generate_demo_data
from kizuna.sources.ingest import stage_sources
from tests.connectors.test_hubspot_sync import CRM_TABLES, hubspot_settings
from tests.standins.hubspot_api import HubSpotStandin, hubspot_id, hubspot_standin, seed_from_demo  # noqa: F401

AS_OF = dt.date(2026, 11, 23)
ID_COLUMNS = {"contacts": "contact_id", "deals": "deal_id", "activities": "activity_id", "support_tickets": "ticket_id"}


def staged(warehouse: Path, translate_ids: bool = False) -> dict[str, set[tuple[Any, ...]]]:
    """The staged CRM tables' rows without the origin columns; demo ids rewritten to the stand-in's if asked."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables: dict[str, set[tuple[Any, ...]]] = {}
        for table in CRM_TABLES:
            cursor = con.execute(f"SELECT * FROM raw_incoming.{table}")
            names = [d[0] for d in cursor.description]
            id_column = ID_COLUMNS.get(table) if translate_ids else None
            tables[table] = set()
            for values in cursor.fetchall():
                row = {n: v for n, v in zip(names, values, strict=True) if not n.startswith("_")}
                if id_column:
                    row[id_column] = hubspot_id(row[id_column])
                tables[table].add(tuple(sorted(row.items())))
        return tables
    finally:
        con.close()


# Columns read from HubSpot properties that the demo fills only in some rows: each must arrive non-empty somewhere.
SOMETIMES_FILLED = {
    "deals": ("owner_email", "created_by_email", "handed_off_at", "accepted_at", "rejected_at", "next_review_on"),
    "activities": ("owner_email", "next_review_on"),
}


def _rewrite(path: Path, change: Any) -> None:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for n, row in enumerate(rows):
        change(n, row)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _hand_offs_and_reviews(n: int, deal: dict[str, str]) -> None:
    """A small demo has few hand-offs and no review dates on deals: some by hand (times in business time,
    without an offset, as a CRM export writes them)."""
    if n % 4 == 0:
        deal["next_review_on"] = (AS_OF + dt.timedelta(days=n % 30)).isoformat()
    if n % 5 == 1:
        deal["handed_off_at"] = f"2026-10-{n % 28 + 1:02d} 09:{n % 60:02d}:00"
        deal["accepted_at" if n % 10 == 1 else "rejected_at"] = f"2026-10-{n % 28 + 1:02d} 17:30:00"


def _later_calls(n: int, activity: dict[str, str]) -> None:
    """Some calls where the rep logged `later` with a date to come back."""
    if activity["type"] == "call" and n % 7 == 0:
        activity["next_review_on"] = (AS_OF + dt.timedelta(days=14)).isoformat()


def test_demo_data_round_trips_through_hubspot(
    hubspot_standin: HubSpotStandin,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    demo = tmp_path / "demo"
    generate_demo_data(demo, 60, 42, AS_OF)
    for billing in ("invoices.csv", "usage.csv"):  # not the CRM's: kept out of both loads
        (demo / billing).unlink()
    _rewrite(demo / "deals.csv", _hand_offs_and_reviews)
    _rewrite(demo / "activities.csv", _later_calls)
    seeded = seed_from_demo(hubspot_standin.state, demo, settings.timezone)
    assert seeded.counts["companies"] == 60 and seeded.counts["contacts"] > 60

    from_files = settings.model_copy(update={"source_dir": demo, "warehouse": tmp_path / "files.duckdb"})
    stage_sources(from_files)
    billing_only = tmp_path / "billing"
    billing_only.mkdir()
    shutil.copy(demo / "subscriptions.csv", billing_only)
    from_hubspot = hubspot_settings(settings, hubspot_standin, options=seeded.options)
    from_hubspot = from_hubspot.model_copy(
        update={"source_dir": billing_only, "warehouse": tmp_path / "hubspot.duckdb"}
    )
    result = stage_sources(from_hubspot)
    assert {f.file for f in result.staged} == {"subscriptions.csv", *(f"hubspot-{t}.csv" for t in CRM_TABLES)}
    expected, got = staged(from_files.warehouse, translate_ids=True), staged(from_hubspot.warehouse)
    assert {dict(r)["type"] for r in got["activities"]} == {"call", "meeting", "visit", "email", "note"}
    for table in CRM_TABLES:
        assert expected[table], table
        assert got[table] == expected[table], f"{table}: {sorted(got[table] ^ expected[table])[:3]}"
    for table, columns in SOMETIMES_FILLED.items():
        for column in columns:
            assert any(dict(r)[column] is not None for r in got[table]), f"{table}.{column} never read"


# -- the rules, one by one ---------------------------------------------------------------------------------


def _row(table: str, object_type: str, props: dict[str, str | None], options: dict[str, Any] | None = None) -> Any:
    mapping = HubSpotMapping(HubSpotOptions.parse(options or {}, "sources.yaml"))
    owners = {"77": "owner@example.co.jp"}
    labels = {("default", "demo"): "Demo given"}
    row = mapping.row(
        table,
        object_type,
        {"id": "501", "properties": props},
        "C1",
        owners.get,
        lambda pipeline, stage: labels.get((pipeline or "", stage)),
    )
    return row, mapping


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"dealstage": "closedwon", "hs_is_closed": "true", "hs_is_closed_won": "true"}, ("closed_won", True, True)),
        (
            {"dealstage": "closedlost", "hs_is_closed": "true", "hs_is_closed_won": "false"},
            ("closed_lost", False, True),
        ),
        ({"dealstage": "contractsent", "hs_is_closed": "false"}, ("negotiation", None, False)),
        # a custom closed stage: won or lost from HubSpot's calculated properties
        ({"dealstage": "9001", "hs_is_closed": "true", "hs_is_closed_won": "true"}, ("closed_won", True, True)),
        # a custom open stage: the pipeline's label
        ({"dealstage": "demo", "pipeline": "default", "hs_is_closed": "false"}, ("Demo given", None, False)),
        # no calculated properties: the stage map decides
        ({"dealstage": "closedwon"}, ("closed_won", True, True)),
    ],
    ids=["won", "lost", "open", "custom-closed", "custom-open", "no-calculated"],
)
def test_deal_stages(props: dict[str, str | None], expected: tuple[str, bool | None, bool]) -> None:
    row, _ = _row("deals", "deals", {"closedate": "2026-10-01T00:00:00Z", **props})
    stage, is_won, closed = expected
    assert (row["stage"], row["is_won"]) == (stage, is_won)
    assert (row["closed_at"] is not None) == closed  # an open deal's closedate is only expected


def test_deal_types_map_with_defaults_options_and_unknowns() -> None:
    row, _ = _row("deals", "deals", {"dealtype": "newbusiness"})
    assert row["type"] == "new"
    row, _ = _row("deals", "deals", {"dealtype": "existingbusiness"})
    assert row["type"] == "upsell"
    row, _ = _row("deals", "deals", {"dealtype": "Partner"}, {"deal_types": {"partner": "cross_sell"}})
    assert row["type"] == "cross_sell"
    row, mapping = _row("deals", "deals", {"dealtype": "Partner", "amount": "1200.5", "hs_analytics_source": "OFFLINE"})
    assert row["type"] is None and mapping.unknown_deal_types == {"Partner": 1}
    assert row["amount"] == Decimal("1200.5") and row["source"] == "offline"


@pytest.mark.parametrize(
    ("object_type", "props", "kind", "outcome"),
    [
        ("calls", {"hs_call_disposition": "73a0d17f-1163-4015-bdd5-ec830791da20"}, "call", "no_answer"),
        ("calls", {"hs_call_disposition": "custom-guid"}, "call", "custom-guid"),
        ("meetings", {"hs_meeting_outcome": "NO_SHOW"}, "meeting", "no_show"),
        ("meetings", {"hs_meeting_outcome": "COMPLETED", "hs_activity_type": "Visit"}, "visit", "completed"),
        ("emails", {"hs_email_direction": "EMAIL", "hs_email_status": "BOUNCED"}, "email", "bounced"),
        ("emails", {"hs_email_direction": "INCOMING_EMAIL", "hs_email_status": "SENT"}, "email", "replied"),
        ("emails", {"hs_email_direction": "EMAIL"}, "email", "sent"),
        ("notes", {}, "note", None),
        (
            "calls",
            {"hs_call_disposition": "73a0d17f-1163-4015-bdd5-ec830791da20", "kizuna_outcome": "meeting_booked"},
            "call",
            "meeting_booked",
        ),
    ],
    ids=["no-answer", "custom-disposition", "no-show", "visit", "bounced", "replied", "sent", "note", "override"],
)
def test_activity_types_and_outcomes(object_type: str, props: dict[str, str], kind: str, outcome: str | None) -> None:
    options = {"properties": {"activities": {"outcome": "kizuna_outcome"}}}
    row, _ = _row(
        "activities", object_type, {"hs_timestamp": "1764547200000", "hubspot_owner_id": "77", **props}, options
    )
    assert (row["type"], row["outcome"]) == (kind, outcome)
    assert row["occurred_at"] == dt.datetime(2025, 12, 1, tzinfo=dt.UTC)
    assert row["owner_email"] == "owner@example.co.jp" and row["customer_id"] == "C1" and row["activity_id"] == "501"


def test_owner_columns_resolve_ids_keep_addresses_and_fall_back() -> None:
    row, _ = _row("customers", "companies", {"name": "x", "hubspot_owner_id": "77"})
    assert row["owner_email"] == "owner@example.co.jp" and row["cs_owner_email"] is None
    options = {"properties": {"customers": {"cs_owner_email": "csm"}}, "owner_fallback": "team@example.co.jp"}
    row, _ = _row(
        "customers", "companies", {"name": "x", "hubspot_owner_id": "404", "csm": "cs@example.co.jp"}, options
    )
    assert row["owner_email"] == "team@example.co.jp" and row["cs_owner_email"] == "cs@example.co.jp"


def test_deal_owner_and_creator_and_the_fallback() -> None:
    """The fallback stands in for an owner (someone must call), never for a creator (credit is not guessed)."""
    mapping = HubSpotMapping(HubSpotOptions.parse({"owner_fallback": "team@example.co.jp"}, "sources.yaml"))
    props = {"hubspot_owner_id": "77", "hs_created_by_user_id": "7000077"}
    owners, users = {"77": "owner@example.co.jp"}, {"7000077": "owner@example.co.jp"}
    row = mapping.row("deals", "deals", {"id": "9", "properties": props}, "C1", owners.get, lambda *_: None, users.get)
    assert (row["owner_email"], row["created_by_email"]) == ("owner@example.co.jp", "owner@example.co.jp")
    assert mapping.unresolved_people == 0
    props = {"hubspot_owner_id": "404", "hs_created_by_user_id": "404"}
    row = mapping.row("deals", "deals", {"id": "9", "properties": props}, "C1", owners.get, lambda *_: None, users.get)
    assert (row["owner_email"], row["created_by_email"]) == ("team@example.co.jp", None)
    assert mapping.unresolved_examples == ["deal 9 hubspot_owner_id=404", "deal 9 hs_created_by_user_id=404"]


@pytest.mark.parametrize(
    ("first", "last", "name"),
    [("花子", "山田", "山田 花子"), ("David", "Nguyen", "David Nguyen"), ("", "山田", "山田"), (None, None, None)],
)
def test_names_follow_the_script(first: str | None, last: str | None, name: str | None) -> None:
    assert full_name(first, last) == name


def test_contacts_language_and_consent() -> None:
    assert [locale(v) for v in ("ja-jp", "EN-us", "fr", None)] == ["ja", "en", None, None]
    assert marketing_opt_in({"hs_email_optout": "true", "hs_legal_basis": "Freely given consent from contact"}) is False
    assert marketing_opt_in({"hs_legal_basis": "Freely given consent from contact"}) is True
    assert marketing_opt_in({"hs_legal_basis": "Legitimate interest – existing customer"}) is None


def test_timestamps_in_either_form_are_utc() -> None:
    assert parse_timestamp("2026-11-01T09:30:00.250Z") == dt.datetime(2026, 11, 1, 9, 30, 0, 250000, tzinfo=dt.UTC)
    assert parse_timestamp("1762000000000") == dt.datetime.fromtimestamp(1762000000, dt.UTC)
    assert parse_timestamp("") is None and parse_timestamp("soon") is None


@pytest.mark.parametrize(
    ("value", "timezone", "day"),
    [
        ("2026-12-07", "Asia/Tokyo", dt.date(2026, 12, 7)),  # a date property, as the v3 API answers it
        ("1796601600000", "Asia/Tokyo", dt.date(2026, 12, 7)),  # the same as midnight UTC in epoch ms
        ("2026-12-07T00:00:00.000Z", "Asia/Tokyo", dt.date(2026, 12, 7)),
        ("2026-12-06T23:30:00Z", "Asia/Tokyo", dt.date(2026, 12, 7)),  # a date-time: its business day
        ("2026-12-06T23:30:00Z", "UTC", dt.date(2026, 12, 6)),
        ("2026-13-01", "UTC", None),
        ("", "UTC", None),
    ],
    ids=["date", "epoch-ms", "iso-midnight", "datetime-tokyo", "datetime-utc", "bad-month", "blank"],
)
def test_dates_are_days(value: str, timezone: str, day: dt.date | None) -> None:
    assert parse_date(value, timezone) == day


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"customer_id_propety": "x"}, "hubspot.customer_id_propety"),
        ({"deal_types": {"partner": "partnership"}}, "hubspot.deal_types.partner"),
        ({"properties": {"customers": {"customer_id": "x"}}}, "hubspot.properties.customers.customer_id"),
        ({"properties": {"invoices": {}}}, "hubspot.properties.invoices"),
        ({"page_size": 500}, "hubspot.page_size"),
    ],
    ids=["misspelt", "bad-deal-type", "key-column", "not-a-hubspot-table", "page-too-big"],
)
def test_bad_options_name_the_option(options: dict[str, Any], named: str) -> None:
    with pytest.raises(SourceError) as failed:
        HubSpotOptions.parse(options, "sources.yaml")
    assert failed.value.finding.column == named
    assert re.search(r"sources\.yaml", str(failed.value))


def test_the_stand_in_answers_in_hubspots_v3_and_v4_shapes(hubspot_standin: HubSpotStandin) -> None:  # noqa: F811
    """Records, batch answers and associations carry what HubSpot's CRM spec says (toObjectId a string)."""
    state = hubspot_standin.state
    company = state.create("companies", {"name": "株式会社サンプル"})
    contact = state.create("contacts", {"email": "taro@example.co.jp"}, company=company)

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            hubspot_standin.url + path,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {state.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return dict(json.load(answer))
        except urllib.error.HTTPError as error:  # 207 is not an error, but other 4xx are
            return dict(json.load(error))

    links = post("/crm/v4/associations/contacts/companies/batch/read", {"inputs": [{"id": contact}, {"id": "404"}]})
    assert {"status", "results", "startedAt", "completedAt", "numErrors", "errors"} <= set(links)
    (to,) = links["results"][0]["to"]
    assert to["toObjectId"] == company and isinstance(to["toObjectId"], str)
    assert {"category", "context", "errors", "links", "message", "status"} <= set(links["errors"][0])
    records = post("/crm/v3/objects/contacts/batch/read", {"inputs": [{"id": contact}], "properties": ["email"]})
    assert {"status", "results", "requestedAt", "startedAt", "completedAt", "links"} <= set(records)
    assert {"id", "properties", "createdAt", "updatedAt", "archived", "url"} <= set(records["results"][0])
