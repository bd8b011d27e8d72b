"""The gate's last step before publishing (kizuna.transform.rebuild_plan.record_staged_month): the months and
customers a load changes, worked out from its staged change list and the rows the gate moved out, equal those a
comparison of the whole raw and staged tables finds (docs/incremental.md)."""

from __future__ import annotations

from datetime import date

import duckdb

from kizuna.core import ops
from kizuna.core.settings import Settings
from kizuna.core.warehouse import INCOMING_SCHEMA, connect
from kizuna.quality.gate import gate_and_publish
from kizuna.sources.ingest import stage_sources
from kizuna.transform.rebuild_plan import _subscriptions_changed, record_staged_month
from tests.quality.test_gate import AS_OF, CONTACTS, CUSTOMERS, SUBSCRIPTIONS, write_sources

INVOICES = ["invoice_id", "customer_id", "subscription_id", "issued_at", "amount", "currency", "status"]
Rows = dict[str, tuple[list[str], list[list[str]]]]
Recorded = tuple[date | None, list[tuple[str | None, date]]]


def day_one() -> Rows:
    return {
        "customers": (CUSTOMERS, [[f"C{i}", f"{i}号株式会社", "10", "2024-01-01", ""] for i in range(1, 6)]),
        "contacts": (CONTACTS, [["P1", "C1", "ichi@example.co.jp", "true", "true", "ja"]]),
        "subscriptions": (
            SUBSCRIPTIONS,
            [
                ["S1", "C1", "2024-01-01", "", "80000", "", "", "12", "JPY", "active"],
                ["S2", "C2", "2024-02-01", "", "30000", "", "", "1", "JPY", "active"],  # cancelled back to 2025-03
                ["S3", "C3", "2025-06-01", "", "30000", "", "", "1", "JPY", "active"],  # merged into C1
                ["S4", "C4", "2024-05-01", "", "20000", "", "", "1", "JPY", "active"],  # its customer deleted
                ["S5", "C5", "2025-01-01", "", "10000", "", "", "1", "JPY", "past_due"],  # a late invoice
            ],
        ),
        "invoices": (
            INVOICES,
            [
                ["I1", "C1", "S1", "2026-10-01 09:00", "88000", "JPY", "paid"],
                ["I4", "C4", "S4", "2026-10-01 09:00", "22000", "JPY", "paid"],
                ["I5", "C5", "S5", "2025-01-01 09:00", "11000", "JPY", "paid"],
                ["I6", "C5", "S5", "2025-09-01 09:00", "11000", "JPY", "open"],
            ],
        ),
    }


def day_two() -> Rows:
    rows = day_one()
    customers, subscriptions, invoices = rows["customers"][1], rows["subscriptions"][1], rows["invoices"][1]
    del customers[3]  # C4 deleted: its unchanged subscription S4 and invoice I4 are orphans, quarantined
    del customers[2]  # C3 merged into C1
    subscriptions[1][3], subscriptions[1][9] = "2025-03-15", "canceled"
    subscriptions[2][1] = "C1"
    invoices.append(["I7", "C5", "S5", "2025-07-01 09:00", "11000", "JPY", "open"])  # S5 unpaid since July now
    return rows


def recorded(con: duckdb.DuckDBPyConnection) -> Recorded:
    month = record_staged_month(con, AS_OF)
    customers = con.execute(
        f"SELECT customer_id, month FROM {ops.LOAD_CUSTOMER_MONTHS} WHERE load_id = "
        f"(SELECT min(load_id) FROM {INCOMING_SCHEMA}._load) ORDER BY customer_id NULLS LAST"
    ).fetchall()
    return month, customers


def test_the_months_of_a_load_are_found_from_its_change_list_as_from_whole_tables(settings: Settings) -> None:
    write_sources(settings.source_dir, day_one())
    stage_sources(settings)
    assert gate_and_publish(settings, AS_OF).passed
    stage_sources(settings)  # the same files again: every table reused unchanged, no change list staged
    again: list[Recorded] = []
    gate_and_publish(settings, AS_OF, before_publish=lambda con: again.append(recorded(con)))
    assert again == [(date(2026, 11, 1), [(None, date(2026, 10, 1))])]  # nothing changed: the as-of month
    write_sources(settings.source_dir, day_two())
    stage_sources(settings)
    seen: dict[str, object] = {}

    def before_publish(con: duckdb.DuckDBPyConnection) -> None:
        table = _subscriptions_changed(con)
        assert table is not None
        seen["compared"] = sorted(r[0] for r in con.execute(f"SELECT subscription_id FROM {table}").fetchall())
        seen["from changes"] = recorded(con)
        rewritten = con.execute(f"SELECT table_name, rewritten FROM {INCOMING_SCHEMA}._load").fetchall()
        # A table the gate rewrote (normalised values) is compared whole: the same months are found.
        con.execute(f"UPDATE {INCOMING_SCHEMA}._load SET rewritten = true")
        assert _subscriptions_changed(con) is None
        seen["whole"] = recorded(con)
        con.executemany(
            f"UPDATE {INCOMING_SCHEMA}._load SET rewritten = ? WHERE table_name = ?",
            [(flag, name) for name, flag in rewritten],
        )
        seen["again"] = recorded(con)

    verdict = gate_and_publish(settings, AS_OF, accept_drop=True, before_publish=before_publish)

    assert verdict.quarantined == {"subscriptions": 1, "invoices": 1}  # S4 and I4: C4 is gone
    # S2 and S3 changed, I7 is new (S5), S4 and I4 left the load through quarantine; S1 is not compared.
    assert seen["compared"] == ["S2", "S3", "S4", "S5"]
    expected = (
        date(2024, 5, 1),
        [
            ("C1", date(2025, 6, 1)),  # S3 merged in: all its months
            ("C2", date(2025, 3, 1)),  # S2 cancelled back to March 2025
            ("C3", date(2025, 6, 1)),  # S3 merged away
            ("C4", date(2024, 5, 1)),  # S4 left with its deleted customer: all its months
            ("C5", date(2025, 7, 1)),  # S5 is past due from the late July invoice on
            (None, date(2026, 10, 1)),  # everyone else from the last closed month
        ],
    )
    assert seen["from changes"] == seen["whole"] == seen["again"] == expected
    with connect(settings.warehouse) as con:
        published = con.execute(
            f"SELECT DISTINCT rebuild_from_month FROM {ops.LOADS} WHERE load_id = ?", [verdict.load_id]
        ).fetchall()
    assert published == [(date(2024, 5, 1),)]
