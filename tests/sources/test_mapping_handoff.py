"""The shipped mappings read the CSQL hand-off and review dates where an export carries them, and need none."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kizuna.core.settings import Settings
from kizuna.core.warehouse import INCOMING_SCHEMA, connect
from kizuna.sources.ingest import stage_sources
from tests.conftest import write_csv

HAND_OFF = ("owner_email", "created_by_email", "handed_off_at", "accepted_at", "rejected_at", "next_review_on")
SALESFORCE = {  # the Opportunities report: headers -> one row
    "Opportunity ID": "0065g00000XyZaAAAV",
    "Account ID": "0015g00000AbCdEAAV",
    "Type": "Existing Customer - Upgrade",
    "Stage": "Prospecting",
    "Amount": "1,200,000",
    "Close Date": "2026/12/20",
    "Created Date": "2026/10/01",
}
SALESFORCE_HAND_OFF = {
    "Owner Email": "ae.sato@example.co.jp",
    "Created By Email": "is.tanaka@example.co.jp",
    "Handed Off At": "2026/10/02 10:15",
    "Accepted At": "2026/10/03 09:00",
    "Rejected At": "",
    "Next Review Date": "2026/12/07",
}
HUBSPOT = {  # the Deals export
    "Record ID": "21000001",
    "Deal Stage": "Qualified To Buy",
    "Close Date": "",
    "Amount": "1200000",
    "Create Date": "2026-10-01 10:00",
    "Deal Type": "Existing Business",
    "Associated Company IDs": "9876543201",
}
HUBSPOT_HAND_OFF = {
    "Handed off at": "2026-10-02 10:15",
    "Accepted at": "",
    "Rejected at": "2026-10-03 09:00",
    "Next review on": "2026-12-07",
}
HANDED = dt.datetime(2026, 10, 2, 1, 15)  # 10:15 in Tokyo, stored in UTC
NEXT_DAY = dt.datetime(2026, 10, 3, 0, 0)


# Per mapping: the accounts file and its headers, the deals file, and the deal's key, company and stage headers.
FILES = {
    "salesforce-report": (
        ("accounts-report.csv", "Account ID", "Account Name"),
        "opportunities-report.csv",
        ("Opportunity ID", "Account ID", "Stage", "2026/01/01"),
    ),
    "hubspot-export": (
        ("hubspot-crm-exports-companies.csv", "Record ID", "Company name"),
        "hubspot-crm-exports-deals.csv",
        ("Record ID", "Associated Company IDs", "Deal Stage", "2026-01-01 00:00"),
    ),
}


def _load(settings: Settings, tmp_path: Path, mapping: str, deal: dict[str, str]) -> tuple[object, ...]:
    """Stage one open deal beside a closed-won one (the subscription the contract needs); the open deal's
    hand-off columns."""
    (accounts, *account_headers), deals, (key, company, stage, day) = FILES[mapping]
    write_csv(settings.source_dir / accounts, account_headers, [[deal[company], "株式会社ひかり製作所"]])
    won = {**dict.fromkeys(deal, ""), key: f"{deal[key]}W", company: deal[company], stage: "Closed Won"}
    won |= {"Amount": "600000", "Close Date": day}
    write_csv(settings.source_dir / deals, list(deal), [list(deal.values()), [won[h] for h in deal]])
    (tmp_path / "sources.yaml").write_text(f"files:\n  mapping: {mapping}\n", encoding="utf-8")
    stage_sources(settings.model_copy(update={"sources_config": tmp_path / "sources.yaml"}))
    with connect(settings.warehouse) as con:
        sql = f"SELECT {', '.join(HAND_OFF)} FROM {INCOMING_SCHEMA}.deals WHERE deal_id = ?"
        rows = con.execute(sql, [deal[key]]).fetchall()
    assert len(rows) == 1
    return tuple(rows[0])


@pytest.mark.parametrize(
    ("mapping", "deal", "expected"),
    [
        (
            "salesforce-report",
            {**SALESFORCE, **SALESFORCE_HAND_OFF},
            ("ae.sato@example.co.jp", "is.tanaka@example.co.jp", HANDED, NEXT_DAY, None, dt.date(2026, 12, 7)),
        ),
        ("salesforce-report", SALESFORCE, (None,) * len(HAND_OFF)),
        ("hubspot-export", {**HUBSPOT, **HUBSPOT_HAND_OFF}, (None, None, HANDED, None, NEXT_DAY, dt.date(2026, 12, 7))),
        ("hubspot-export", HUBSPOT, (None,) * len(HAND_OFF)),
    ],
    ids=["salesforce", "salesforce-without", "hubspot", "hubspot-without"],
)
def test_hand_off_columns_from_shipped_mappings(
    settings: Settings, tmp_path: Path, mapping: str, deal: dict[str, str], expected: tuple[object, ...]
) -> None:
    assert _load(settings, tmp_path, mapping, deal) == expected
