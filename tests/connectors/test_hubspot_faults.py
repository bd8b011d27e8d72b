"""HubSpot's limits and failures: retries, rate limits, refused tokens, search windows, deletes by customer id."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from kizuna.connectors.base import ChangeSink, ConnectorError
from kizuna.connectors.hubspot import HubSpotConnector
from kizuna.core.contract import TABLES_BY_NAME
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.sources.ingest import stage_sources
from tests.conftest import write_csv
from tests.connectors.test_hubspot_sync import hubspot_settings
from tests.standins.hubspot_api import HubSpotStandin, StandinState, hubspot_standin  # noqa: F401 (a fixture)


def crm_account(state: StandinState, contacts: int = 5, deals: int = 0) -> str:
    company = state.create("companies", {"name": "株式会社テスト"})
    for n in range(contacts):
        state.create("contacts", {"email": f"c{n}@example.co.jp", "lastname": f"山田{n}"}, company=company)
    for _ in range(deals):
        state.create("deals", {"dealstage": "qualifiedtobuy", "amount": "1000"}, company=company)
    return company


def with_files(settings: Settings, company: str) -> None:
    """customers and subscriptions (the required tables) from files; the rest from HubSpot."""
    write_csv(settings.source_dir / "customers.csv", ["customer_id", "name"], [[company, "株式会社テスト"]])
    write_csv(
        settings.source_dir / "subscriptions.csv",
        ["subscription_id", "customer_id", "start_date", "mrr"],
        [["S1", company, "2026-01-01", "1000"]],
    )


def staged_ids(settings: Settings, table: str, key: str) -> list[str]:
    with connect(settings.warehouse, read_only=True) as con:
        return [r[0] for r in con.execute(f"SELECT {key} FROM raw_incoming.{table} ORDER BY 1").fetchall()]


def test_transient_failures_are_retried_and_the_pull_completes(
    hubspot_standin: HubSpotStandin,  # noqa: F811
    settings: Settings,
) -> None:
    state = hubspot_standin.state
    company = crm_account(state, contacts=5, deals=3)
    s = hubspot_settings(
        settings, hubspot_standin, ("contacts", "deals"), {"page_size": 2}, connector_timeout_seconds=1.0
    )
    with_files(s, company)
    rate_limited = state.fail("429", "POST /crm/v3/objects/contacts/search", retry_after="1")
    timed_out = state.fail("hang", "POST /crm/v3/objects/deals/search", hang_seconds=3.0)
    unavailable = state.fail("503", "POST /crm/v3/objects/deals/search", skip=1)  # the second page
    dropped = state.fail("drop", "POST /crm/v4/associations/deals/companies/batch/read")
    # its retry is answered, saying the burst allowance is spent: the next request waits the interval
    spent = state.fail("spent", "POST /crm/v4/associations/deals/companies/batch/read", interval_ms=250)

    stage_sources(s)
    assert (rate_limited.fired, timed_out.fired, unavailable.fired, dropped.fired, spent.fired) == (1, 1, 1, 1, 1)
    answered = next(n for n, r in enumerate(state.requests) if r.path.startswith("/crm/v4/") and r.status == 200)
    assert state.requests[answered + 1].at - state.requests[answered].at >= 0.24
    assert len(staged_ids(s, "contacts", "contact_id")) == 5
    assert len(staged_ids(s, "deals", "deal_id")) == 3
    first, again = [r.at for r in state.requests if r.path == "/crm/v3/objects/contacts/search"][:2]
    assert again - first >= 0.95  # Retry-After: 1 was honoured


def test_a_spent_daily_limit_fails_at_once_and_says_so(
    hubspot_standin: HubSpotStandin,  # noqa: F811
    settings: Settings,
) -> None:
    state = hubspot_standin.state
    with_files(settings, crm_account(state))
    s = hubspot_settings(settings, hubspot_standin, ("contacts",), connector_max_retries=3)
    spent = state.fail("429-daily", "POST /crm/v3/objects/contacts/search", times=None)
    with pytest.raises(ConnectorError, match="hubspot search of contacts: HubSpot's daily API limit is spent"):
        stage_sources(s)
    assert spent.fired == 1  # not retried: waiting would not help


@pytest.mark.parametrize("token", ["pat-na1-99999999-8888-7777-6666-555555555555", None], ids=["refused", "missing"])
def test_token_problems_are_named_and_the_token_never_shown(
    hubspot_standin: HubSpotStandin,  # noqa: F811
    settings: Settings,
    token: str | None,
) -> None:
    state = hubspot_standin.state
    state.echo_token_in_errors = True  # the worst case: the error answer repeats the token it was sent
    with_files(settings, crm_account(state))
    s = hubspot_settings(settings, hubspot_standin, ("contacts",))
    s = s.model_copy(update={"hubspot_token": SecretStr(token) if token else None})
    with pytest.raises(ConnectorError) as failed:
        stage_sources(s)
    text = "\n".join([str(failed.value), repr(failed.value), *traceback.format_exception(failed.value)])
    if token:
        assert "HubSpot refused the token (401 INVALID_AUTHENTICATION" in text
        assert state.requests[0].status == 401
        assert token not in text and "pat-na1" not in text
    else:
        assert "the HubSpot token is not set: set KIZUNA_HUBSPOT_TOKEN" in text
        assert not state.requests
    assert failed.value.__cause__ is None and failed.value.__context__ is None  # the client's error is not attached


def test_paging_misses_nothing_modified_meanwhile_and_pages_one_date_by_id(
    hubspot_standin: HubSpotStandin,  # noqa: F811
    settings: Settings,
) -> None:
    state = hubspot_standin.state
    state.window = 6  # HubSpot answers 400 past 10,000 results per query; keyset paging never gets near it
    company = crm_account(state, contacts=8)
    first = min(state.objects["contacts"], key=int)
    state.tick_ms = 0  # a bulk import: nine contacts modified in the same millisecond
    for n in range(9):
        state.create("contacts", {"email": f"bulk{n}@example.co.jp"}, company=company)
    state.tick_ms = 1000
    for n in range(3):
        state.create("contacts", {"email": f"late{n}@example.co.jp"}, company=company)
    # While the connector pages, someone edits a contact it has already read: with offset paging the
    # contact after the page boundary would slide below the next offset and never be read.
    edit = state.fail(
        "call",
        "POST /crm/v3/objects/contacts/search",
        skip=1,
        action=lambda st: st.update("contacts", first, jobtitle="部長"),
    )
    s = hubspot_settings(settings, hubspot_standin, ("contacts",), {"page_size": 2})
    with_files(s, company)

    stage_sources(s)
    assert edit.fired == 1
    assert len(staged_ids(s, "contacts", "contact_id")) == 20
    with connect(s.warehouse, read_only=True) as con:
        assert con.execute("SELECT role FROM raw_incoming.contacts WHERE contact_id = ?", [first]).fetchone() == (
            "部長",
        )
    searches = [r for r in state.requests if r.path == "/crm/v3/objects/contacts/search"]
    assert all(r.status == 200 and "after" not in r.body for r in searches)
    by_id = [r.body for r in searches if r.body["sorts"][0]["propertyName"] == "hs_object_id"]
    assert by_id and by_id[0]["filterGroups"][0]["filters"][0]["operator"] == "EQ"  # the bulk import's date
    assert len({i for r in searches for i in r.ids}) == 20


def _pull(connector: HubSpotConnector, cursor: dict[str, Any] | None, path: Path) -> tuple[Any, ChangeSink, list[str]]:
    sink = ChangeSink(TABLES_BY_NAME["customers"], path)
    outcome = connector.pull(TABLES_BY_NAME["customers"], cursor, sink)
    sink.close()
    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    return outcome, sink, sorted(r.split(",")[0] for r in rows)


def test_deletes_by_customer_id_property_spare_live_duplicates_and_merges_pull_everything(
    hubspot_standin: HubSpotStandin,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    state = hubspot_standin.state
    x = state.create("companies", {"name": "X", "crm_id": "C1"})
    y = state.create("companies", {"name": "Y", "crm_id": "C2"})
    w = state.create("companies", {"name": "W", "crm_id": "C3"})
    s = hubspot_settings(settings, hubspot_standin, ("customers",))
    connector = HubSpotConnector(s, {"customer_id_property": "crm_id"})

    outcome, _, keys = _pull(connector, None, tmp_path / "1.csv")
    assert outcome.snapshot and keys == ["C1", "C2", "C3"]

    state.advance(3600)
    duplicate = state.create("companies", {"name": "X (duplicate)", "crm_id": "C1"})
    state.archive("companies", duplicate)  # deleted, but C1 still belongs to X
    state.archive("companies", y)
    outcome, sink, keys = _pull(connector, outcome.cursor, tmp_path / "2.csv")
    assert not outcome.snapshot
    assert sink.deleted == {"C2"}
    assert "C1" in keys and sink.refs.count(f"company {x}") >= 1  # X was pulled again instead

    state.advance(3600)
    state.merge("companies", x, w)  # W's customer id C3 is no longer anywhere in HubSpot
    outcome, sink, keys = _pull(connector, outcome.cursor, tmp_path / "3.csv")
    assert outcome.snapshot  # the mirror is replaced: C3 disappears with it
    assert set(keys) == {"C1"}
