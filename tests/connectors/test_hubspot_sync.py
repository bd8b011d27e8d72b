"""HubSpot -> raw tables through the real ingest and gate: a first full pull, changes, a crash and the resume.

The official client talks HTTP to the stand-in (tests/standins/hubspot_api.py); nothing of ours is patched.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import traceback
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from pydantic import SecretStr

from kizuna.connectors.base import ConnectorError
from kizuna.connectors.hubspot_values import to_millis
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.quality.gate import gate_and_publish
from kizuna.sources.ingest import stage_sources
from tests.conftest import write_csv
from tests.sources.test_ingest import raw_fingerprint
from tests.standins.hubspot_api import HubSpotStandin, StandinState, hubspot_standin  # noqa: F401 (a fixture)

AS_OF = dt.date(2026, 11, 30)
CRM_TABLES = ("customers", "contacts", "deals", "activities", "support_tickets")
CONNECTED = "f240bbac-87c9-4f6e-bf70-924b57d47db7"
SUBSCRIPTIONS = ["subscription_id", "customer_id", "start_date", "mrr", "contract_term_months", "status"]


def hubspot_settings(
    settings: Settings,
    standin: HubSpotStandin,
    tables: tuple[str, ...] = CRM_TABLES,
    options: dict[str, Any] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings routing `tables` to HubSpot (the stand-in), with `options` in the sources file."""
    path = settings.source_dir.parent / "sources.yaml"
    doc: dict[str, Any] = {"tables": dict.fromkeys(tables, "hubspot")}
    if options:
        doc["hubspot"] = options
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return settings.model_copy(
        update={
            "sources_config": path,
            "hubspot_token": SecretStr(standin.state.token),
            "hubspot_base_url": standin.url,
            "connector_max_retries": 1,
            **overrides,
        }
    )


def raw_rows(settings: Settings, table: str, columns: str, schema: str = "raw") -> list[tuple[Any, ...]]:
    with connect(settings.warehouse, read_only=True) as con:
        return con.execute(f"SELECT {columns} FROM {schema}.{table} ORDER BY 1").fetchall()


def state_fingerprint(settings: Settings) -> dict[str, Any]:
    """Cursors and mirrors as committed (connector_state), to prove a failed pull left them alone."""
    with connect(settings.warehouse, read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'connector_state' ORDER BY 1"
            ).fetchall()
        ]
        return {t: sorted(map(str, con.execute(f'SELECT * FROM connector_state."{t}"').fetchall())) for t in tables}


def stored_cursor(settings: Settings, table: str) -> dict[str, Any]:
    import json

    with connect(settings.warehouse, read_only=True) as con:
        row = con.execute("SELECT cursor FROM connector_state.cursors WHERE table_name = ?", [table]).fetchone()
    assert row is not None
    return dict(json.loads(row[0]))


def assert_secret_nowhere(secret: str, settings: Settings, texts: list[str]) -> None:
    """Not in any text given (logs, output, errors), any VARCHAR value of the warehouse, any file under var/."""
    for text in texts:
        assert secret not in text
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns WHERE data_type = 'VARCHAR'"
        ).fetchall()
        assert columns
        for schema, table, column in columns:
            hits = con.execute(
                f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}" LIKE ?', [f"%{secret}%"]
            ).fetchone()
            assert hits == (0,), f"{schema}.{table}.{column} holds the secret"
    finally:
        con.close()
    files = [Path(root) / name for root, _, names in os.walk(settings.var_dir) for name in names]
    assert files
    for path in files:
        assert secret.encode() not in path.read_bytes(), f"{path} holds the secret"


def seed_account(state: StandinState) -> dict[str, str]:
    """A small account; records ten minutes apart, so the pull's lookback reaches back to one record only."""
    state.tick_ms = 600_000
    ids: dict[str, str] = {}
    tanaka = state.add_owner("tanaka@kizuna-test.example")
    sato = state.add_owner("sato@kizuna-test.example")
    gone = state.add_owner("yamada.left@kizuna-test.example", archived=True)  # a deactivated user
    for name, owner in (("A", tanaka), ("B", sato), ("C", gone), ("D", None)):
        ids[name] = state.create(
            "companies",
            {"name": f"株式会社{name}商事", "numberofemployees": "120", "state": "東京都", "hubspot_owner_id": owner},
        )
    for name, company in (("a1", "A"), ("a2", "A"), ("b1", "B"), ("c1", "C"), ("d1", "D")):
        ids[name] = state.create(
            "contacts",
            {"email": f"{name}@example.co.jp", "firstname": "花子", "lastname": f"{name}田", "hs_language": "ja-jp"},
            company=ids[company],
        )
    ids["lead"] = state.create("contacts", {"email": "lead@example.com", "firstname": "Lee", "lastname": "Ray"})
    for name, company, stage, kind in (
        ("won", "A", "closedwon", "newbusiness"),
        ("open", "B", "contractsent", "existingbusiness"),
        ("lost", "C", "closedlost", "partnership"),  # not a contract type: left empty, with a warning
    ):
        ids[name] = state.create(
            "deals",
            {
                "dealstage": stage,
                "pipeline": "default",
                "dealtype": kind,
                "amount": "960000",
                "closedate": "2026-10-15T03:00:00.000Z",
            },
            company=ids[company],
        )
    ids["call"] = state.create(
        "calls",
        {"hs_timestamp": "2026-10-01T01:00:00Z", "hubspot_owner_id": tanaka, "hs_call_disposition": CONNECTED},
        company=ids["A"],
    )
    ids["meeting"] = state.create(
        "meetings",
        {"hs_timestamp": "2026-10-02T01:00:00Z", "hubspot_owner_id": gone, "hs_meeting_outcome": "COMPLETED"},
        company=ids["B"],
    )
    ids["note"] = state.create("notes", {"hs_timestamp": "2026-10-03T01:00:00Z"}, company=ids["C"])
    ids["email"] = state.create(
        "emails",
        {"hs_timestamp": "2026-10-04T01:00:00Z", "hubspot_owner_id": sato, "hs_email_direction": "INCOMING_EMAIL"},
        company=ids["A"],
    )
    for name, company in (("t1", "A"), ("t2", "B")):
        ids[name] = state.create("tickets", {"hs_ticket_category": "PRODUCT_ISSUE"}, company=ids[company])
    state.tick_ms = 1000
    state.advance(3600)
    return ids


def test_full_pull_changes_crash_and_resume(
    hubspot_standin: HubSpotStandin,  # noqa: F811
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for logger in ("kizuna", "urllib3", "hubspot"):  # everything our pull and the client say, even at DEBUG
        caplog.set_level(logging.DEBUG, logger=logger)
    state = hubspot_standin.state
    ids = seed_account(state)
    s = hubspot_settings(settings, hubspot_standin, options={"page_size": 3})
    write_csv(
        s.source_dir / "subscriptions.csv",
        SUBSCRIPTIONS,
        [
            ["S1", ids["A"], "2026-01-01", "80000", "12", "active"],
            ["S2", ids["B"], "2026-02-01", "30000", "1", "active"],
        ],
    )

    # 1. The first pull takes every live record, through the gate into raw.
    stage_sources(s)
    gate_and_publish(s, AS_OF)
    assert raw_rows(s, "customers", "customer_id, name, employee_count, prefecture, owner_email") == sorted(
        [
            (ids["A"], "株式会社A商事", 120, "東京都", "tanaka@kizuna-test.example"),
            (ids["B"], "株式会社B商事", 120, "東京都", "sato@kizuna-test.example"),
            (ids["C"], "株式会社C商事", 120, "東京都", "yamada.left@kizuna-test.example"),
            (ids["D"], "株式会社D商事", 120, "東京都", None),
        ]
    )
    assert raw_rows(s, "contacts", "contact_id, customer_id, name, locale") == sorted(
        [(ids[c], ids[c[0].upper()], f"{c}田 花子", "ja") for c in ("a1", "a2", "b1", "c1", "d1")]
    )  # the lead without a company is skipped (and said so in a warning)
    assert "skipped records without an associated company: 1 contacts" in caplog.text
    closed = dt.datetime(2026, 10, 15, 3, 0)
    assert raw_rows(s, "deals", "deal_id, customer_id, type, stage, is_won, closed_at") == sorted(
        [
            (ids["won"], ids["A"], "new", "closed_won", True, closed),
            (ids["open"], ids["B"], "upsell", "negotiation", None, None),
            (ids["lost"], ids["C"], None, "closed_lost", False, closed),
        ]
    )
    assert "'partnership' (1)" in caplog.text
    assert raw_rows(s, "activities", "activity_id, customer_id, type, owner_email, outcome") == sorted(
        [
            (ids["call"], ids["A"], "call", "tanaka@kizuna-test.example", "conversation"),
            (ids["meeting"], ids["B"], "meeting", "yamada.left@kizuna-test.example", "completed"),
            (ids["note"], ids["C"], "note", None, None),
            (ids["email"], ids["A"], "email", "sato@kizuna-test.example", "replied"),
        ]
    )
    assert len(raw_rows(s, "support_tickets", "ticket_id")) == 2
    first_run = state.request_lines()
    assert not any("GET /crm/v3/objects/" in line for line in first_run)  # a first pull needs no archived lists
    # 6 contacts, 3 per page, each page searching from the last date seen: 1-3, 3-5, 5-6.
    assert [r.ids for r in state.requests if r.path == "/crm/v3/objects/contacts/search"] == [
        [ids["a1"], ids["a2"], ids["b1"]],
        [ids["b1"], ids["c1"], ids["d1"]],
        [ids["d1"], ids["lead"]],
    ]
    assert "GET /crm/v3/pipelines/deals" not in first_run  # every stage was in the stage map
    cursor = stored_cursor(s, "contacts")
    state.requests.clear()

    # 2. Changes in HubSpot; then a pull that dies on the second page of contacts, after its retry.
    state.update("contacts", ids["a1"], jobtitle="部長")
    ids["a3"] = state.create("contacts", {"email": "a3@example.co.jp", "lastname": "三浦"}, company=ids["A"])
    state.archive("contacts", ids["b1"])
    state.archive("calls", ids["call"])
    state.update("deals", ids["open"], dealstage="closedwon")
    state.merge("companies", ids["A"], ids["D"])  # D's contact d1 moves to A
    ids["visit"] = state.create(
        "meetings", {"hs_timestamp": "2026-11-20T02:00:00Z", "hs_activity_type": "訪問"}, company=ids["B"]
    )
    before_raw, before_state = raw_fingerprint(s), state_fingerprint(s)
    dropped = state.fail("drop", "POST /crm/v3/objects/contacts/search", skip=1, times=None)
    with pytest.raises(ConnectorError) as failed:
        stage_sources(s)
    message = str(failed.value)
    assert "hubspot search of contacts" in message and "no answer after 1 retries" in message
    assert dropped.fired == 2  # the request and its one retry
    assert raw_fingerprint(s) == before_raw and state_fingerprint(s) == before_state
    assert stored_cursor(s, "contacts") == cursor
    with connect(s.warehouse, read_only=True) as con:  # nothing half-staged is left behind either
        assert not con.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = 'raw_incoming'").fetchall()

    # 3. The next run resumes from the old cursor, through a 500 and a rate-limited 429, and catches up.
    state.faults.clear()
    state.requests.clear()
    server_error = state.fail("500", "POST /crm/v3/objects/deals/search")
    limited = state.fail("429-limits", "GET /crm/v3/objects/calls", interval_ms=300)
    stage_sources(s)
    gate_and_publish(s, AS_OF)
    assert server_error.fired == 1 and limited.fired == 1
    calls_lists = [r.at for r in state.requests if r.path == "/crm/v3/objects/calls"]
    assert calls_lists[1] - calls_lists[0] >= 0.29  # waited what X-HubSpot-RateLimit-* asked
    # Only what changed since the cursor was asked for and answered (the record at the cursor itself comes
    # again: the search is GTE the cursor less the lookback, so records indexed late are not missed).
    searches = [r for r in state.requests if r.path.endswith("/search")]
    assert all(r.body["filterGroups"][0]["filters"][0]["operator"] == "GTE" for r in searches)
    contacts_searches = [r for r in searches if r.path == "/crm/v3/objects/contacts/search"]
    since = to_millis(cursor["contacts"]) - 300_000  # lookback_seconds defaults to 300
    assert contacts_searches[0].body["filterGroups"] == [
        {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(since)}]}
    ]
    assert contacts_searches[0].body["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    assert [r.ids for r in contacts_searches] == [[ids["lead"], ids["a1"], ids["a3"]], [ids["a3"], ids["d1"]]]
    objects = ("companies", "contacts", "deals", "calls", "meetings", "notes", "emails", "tickets")
    assert set(state.request_lines()) == {
        *(f"POST /crm/v3/objects/{o}/search" for o in objects),
        *(f"GET /crm/v3/objects/{o}" for o in objects),  # archived=true: the deletes
        *(
            f"POST /crm/v4/associations/{o}/companies/batch/read"
            for o in ("deals", "meetings", "notes", "emails", "tickets")
        ),
        "GET /crm/v3/owners/",
    }  # no call was answered (the only one is archived), so no association read for calls
    assert all(
        r.query["archived"] == ["True"]
        for r in state.requests
        if r.path.startswith("/crm/v3/objects/") and r.method == "GET"
    )
    assert raw_rows(s, "contacts", "contact_id, customer_id, role") == sorted(
        [
            (ids["a1"], ids["A"], "部長"),
            (ids["a2"], ids["A"], None),
            (ids["a3"], ids["A"], None),
            (ids["c1"], ids["C"], None),
            (ids["d1"], ids["A"], None),  # moved with the merge
        ]
    )
    assert [r[0] for r in raw_rows(s, "customers", "customer_id")] == sorted([ids["A"], ids["B"], ids["C"]])
    deals = {r[0]: r[1:] for r in raw_rows(s, "deals", "deal_id, stage, is_won")}
    assert deals[ids["open"]] == ("closed_won", True)
    assert raw_rows(s, "activities", "activity_id, type") == sorted(
        [(ids["meeting"], "meeting"), (ids["note"], "note"), (ids["email"], "email"), (ids["visit"], "visit")]
    )
    assert stored_cursor(s, "contacts") != cursor

    # 4. --full-refresh ignores the cursors: every live record again, no archived lists needed.
    state.requests.clear()
    stage_sources(s.model_copy(update={"full_refresh": True}))
    first_searches = {r.path: r.body for r in reversed(state.requests) if r.path.endswith("/search")}
    assert len(first_searches) == 8 and all(not b["filterGroups"] for b in first_searches.values())
    assert not any(r.method == "GET" and r.path.startswith("/crm/v3/objects/") for r in state.requests)
    assert raw_rows(s, "contacts", "contact_id, customer_id, role", "raw_incoming") == raw_rows(
        s, "contacts", "contact_id, customer_id, role"
    )

    # 5. The token is nowhere: not in logs (even at DEBUG), output, errors, the warehouse or var/.
    out, err = capsys.readouterr()
    texts = [caplog.text, out, err, message, "".join(traceback.format_exception(failed.value))]
    assert_secret_nowhere(state.token, s, texts)


def test_an_incremental_load_quarantines_carried_over_contacts_by_record_not_by_row_number(
    hubspot_standin: HubSpotStandin,  # noqa: F811
    settings: Settings,
) -> None:
    """A company deleted in HubSpot orphans contacts pulled earlier; a contact new in this pull (row 2 of the
    pull, like the first carried-over one) is valid and must be published. Findings name the HubSpot record."""
    state = hubspot_standin.state
    ids = seed_account(state)
    s = hubspot_settings(settings, hubspot_standin, tables=("customers", "contacts"))
    subscriptions = [[f"S{c}", ids[c], "2026-01-01", "10000", "1", "active"] for c in "ABCD"]
    write_csv(s.source_dir / "subscriptions.csv", SUBSCRIPTIONS, subscriptions)
    stage_sources(s)
    gate_and_publish(s, AS_OF)
    with connect(s.warehouse, read_only=True) as con:
        first = con.execute("SELECT customer_id FROM raw.contacts WHERE _source_row = 2").fetchone()
        assert first is not None
        query = "SELECT contact_id FROM raw.contacts WHERE customer_id = ?"
        orphans = {r[0] for r in con.execute(query, list(first)).fetchall()}
    state.archive("companies", first[0])
    kept = next(ids[c] for c in "ABCD" if ids[c] != first[0])
    new = state.create("contacts", {"email": "new@example.co.jp", "firstname": "新", "lastname": "規"}, company=kept)

    stage_sources(s)
    verdict = gate_and_publish(s, AS_OF)

    published = {r[0] for r in raw_rows(s, "contacts", "contact_id")}
    assert new in published and not orphans & published
    assert verdict.quarantined.get("contacts") == len(orphans)
    (result,) = [r for r in verdict.warnings if r.table == "contacts" and r.column == "customer_id"]
    assert result.unexpected_count == len(orphans)
    assert {f.message.rsplit(" (hubspot contact ", 1)[-1].rstrip(")") for f in result.findings} == orphans
