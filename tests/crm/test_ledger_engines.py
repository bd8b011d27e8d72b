"""The CRM sync ledger on DuckDB and on PostgreSQL (issue 24): what kizuna wrote to each CRM object, and why.

One write-back cycle (account ids, values sent, tasks announced, created, refused, closed) through the same calls
on a warehouse of each engine, with the same ledger expected of both.
"""

from __future__ import annotations

from datetime import date

from kizuna.core.connection import Connection
from kizuna.crm import ledger
from kizuna.crm.plan import AccountPlan, TaskPlan


def _task(key: str, customer: str) -> TaskPlan:
    return TaskPlan(key, "renewal_due", customer, None, f"更新のご案内 {customer}", "body", date(2026, 12, 9), "high")


def test_a_write_back_cycle_leaves_the_same_ledger_on_each_engine(engine_con: Connection) -> None:
    con = engine_con
    ledger.load(con, "hubspot")  # creates the table
    ledger.record_account_ids(con, "hubspot", {"C1": "901", "C2": "902"})
    ledger.record_account_ids(con, "hubspot", {"C2": "912"})  # found again under a new id (merged in the CRM)
    sent = AccountPlan("C1", "rep@example.co.jp", {"kizuna_rank": "A", "kizuna_mrr": 120000})
    ledger.record_account_values(con, "hubspot", [sent])
    ledger.record_pending(con, "hubspot", [_task("t1", "C1"), _task("t2", "C2")], date(2026, 12, 7))
    ledger.record_pending(con, "hubspot", [_task("t1", "C1")], date(2026, 12, 8))  # announced twice: kept once
    ledger.record_created(con, "hubspot", {"t1": "task-71"})
    ledger.forget_pending(con, "hubspot", ["t2"])  # the CRM refused it: planned afresh next run
    ledger.record_states(con, "hubspot", {"t1": "completed"})
    closed_once = ledger.load(con, "hubspot").tasks["t1"].closed_at
    ledger.record_states(con, "hubspot", {"t1": "completed"})  # read back again: closed_at is not moved
    ledger.forget_accounts(con, "hubspot", ["C2"])

    got = ledger.load(con, "hubspot")
    assert list(got.accounts) == ["C1"] and got.accounts["C1"].crm_id == "901"
    assert got.accounts["C1"].values_hash == sent.values_hash
    assert got.accounts["C1"].sent_values == '{"kizuna_mrr": 120000, "kizuna_rank": "A"}'
    task = got.tasks["t1"]
    assert (task.crm_id, task.state, task.first_seen_on, task.sent_values) == (
        "task-71",
        "completed",
        date(2026, 12, 7),
        "更新のご案内 C1",
    )
    assert closed_once is not None and task.closed_at == closed_once
    assert list(got.tasks) == ["t1"] and ledger.load(con, "salesforce").tasks == {}
