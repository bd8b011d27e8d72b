"""The CSQL hand-off and review dates from HubSpot: owners, creators, kizuna's own properties, and their absence."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import duckdb
import pytest

from kizuna.connectors.hubspot_values import to_millis
from kizuna.core.settings import Settings
from kizuna.sources.ingest import stage_sources
from tests.conftest import write_csv
from tests.connectors.test_hubspot_sync import SUBSCRIPTIONS, hubspot_settings
from tests.standins.hubspot_api import HubSpotStandin, hubspot_standin  # noqa: F401 (a fixture)

HAND_OFF = ("owner_email", "created_by_email", "handed_off_at", "accepted_at", "rejected_at", "next_review_on")


def _load(settings: Settings, standin: HubSpotStandin, company: str, options: dict[str, Any] | None = None) -> Settings:
    """Stage customers, deals and activities from HubSpot (subscriptions from a file, as the contract needs)."""
    s = hubspot_settings(settings, standin, tables=("customers", "deals", "activities"), options=options)
    write_csv(
        s.source_dir / "subscriptions.csv", SUBSCRIPTIONS, [["S1", company, "2026-01-01", "80000", "12", "active"]]
    )
    stage_sources(s)
    return s


def _staged(settings: Settings, table: str, columns: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    key = "deal_id" if table == "deals" else "activity_id"
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        rows = con.execute(f"SELECT {key}, {', '.join(columns)} FROM raw_incoming.{table}").fetchall()
    finally:
        con.close()
    return {str(r[0]): tuple(r[1:]) for r in rows}


def test_owners_creators_hand_off_and_review_dates(
    hubspot_standin: HubSpotStandin,  # noqa: F811
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = hubspot_standin.state
    tanaka = state.add_owner("tanaka@kizuna-test.example")
    gone = state.add_owner("yamada.left@kizuna-test.example", archived=True)  # a deactivated user: userId null
    company = state.create("companies", {"name": "株式会社A商事"})
    handed = state.create(
        "deals",
        {
            "dealstage": "qualifiedtobuy",
            "hubspot_owner_id": tanaka,
            "hs_created_by_user_id": state.user_of("tanaka@kizuna-test.example"),
            "csql_handoff": "2026-10-01T00:30:00Z",  # a renamed property (the `properties` option), ISO 8601
            "kizuna_accepted_at": str(to_millis("2026-10-01T08:00:00Z")),  # epoch milliseconds
            "kizuna_next_review_on": "2026-12-07",  # a date property, as the v3 API answers it
        },
        company=company,
    )
    departed = state.create(
        "deals",
        {
            "dealstage": "closedlost",
            "hubspot_owner_id": gone,
            "hs_created_by_user_id": state.user_of("yamada.left@kizuna-test.example"),
            "csql_handoff": "2026-09-01T01:00:00Z",
            "kizuna_rejected_at": "2026-09-02T01:00:00.000Z",
        },
        company=company,
    )
    unknown = state.create(
        "deals",
        {"dealstage": "qualifiedtobuy", "hubspot_owner_id": "404", "hs_created_by_user_id": "9999"},
        company=company,
    )
    later = state.create(  # a call where the rep logged "later": midnight UTC in epoch ms
        "calls",
        {"hs_timestamp": "2026-11-20T02:00:00Z", "kizuna_next_review_on": str(to_millis("2026-12-04T00:00:00Z"))},
        company=company,
    )
    options = {"properties": {"deals": {"handed_off_at": "csql_handoff"}}}
    with caplog.at_level(logging.WARNING, logger="kizuna"):
        s = _load(settings, hubspot_standin, company, options)

    deals = _staged(s, "deals", HAND_OFF)
    assert deals[handed] == (
        "tanaka@kizuna-test.example",
        "tanaka@kizuna-test.example",
        dt.datetime(2026, 10, 1, 0, 30),
        dt.datetime(2026, 10, 1, 8, 0),
        None,
        dt.date(2026, 12, 7),
    )
    # a deactivated owner still owns and created old deals: found through userIdIncludingInactive
    assert deals[departed] == (
        "yamada.left@kizuna-test.example",
        "yamada.left@kizuna-test.example",
        dt.datetime(2026, 9, 1, 1, 0),
        None,
        dt.datetime(2026, 9, 2, 1, 0),
        None,
    )
    # ids the owners API does not know: blank, and the warning names the deal and the property
    assert deals[unknown] == (None,) * len(HAND_OFF)
    assert f"deal {unknown} hubspot_owner_id=404" in caplog.text
    assert f"deal {unknown} hs_created_by_user_id=9999" in caplog.text
    assert _staged(s, "activities", ("next_review_on",))[later] == (dt.date(2026, 12, 4),)


def test_a_portal_without_kizunas_properties_loads_with_the_columns_blank(
    hubspot_standin: HubSpotStandin,  # noqa: F811
    settings: Settings,
) -> None:
    state = hubspot_standin.state
    company = state.create("companies", {"name": "株式会社B商事"})
    deal = state.create("deals", {"dealstage": "closedwon", "amount": "120000"}, company=company)
    call = state.create("calls", {"hs_timestamp": "2026-11-20T02:00:00Z"}, company=company)
    s = _load(settings, hubspot_standin, company)

    assert _staged(s, "deals", HAND_OFF)[deal] == (None,) * len(HAND_OFF)
    assert _staged(s, "activities", ("next_review_on",))[call] == (None,)
    # the properties were asked for (HubSpot leaves out the ones a portal does not have), not filtered on
    (search,) = state.searches("deals")
    assert {"kizuna_handed_off_at", "kizuna_next_review_on", "hs_created_by_user_id"} <= set(search["properties"])
    assert all(f["propertyName"] == "hs_lastmodifieddate" for g in search["filterGroups"] for f in g["filters"])
