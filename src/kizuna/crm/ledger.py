"""The sync ledger, ops.crm_sync: what kizuna last wrote to each CRM object, and each task's state.

A task's row is written `pending` before the batch that creates it is sent, so a run killed mid-batch leaves
rows whose CRM ids are unknown: the next run looks them up in the CRM by their key before creating anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.warehouse import table_exists
from kizuna.crm.plan import AccountPlan, TaskPlan, values_json

ACCOUNT, TASK = "account", "task"
LIVE_TASK_STATES = ("pending", "created", "open")


@dataclass(frozen=True)
class LedgerRow:
    object: str
    key: str
    crm_id: str | None
    customer_id: str | None
    reason: str | None
    values_hash: str | None
    sent_values: str | None
    state: str
    first_seen_on: date | None
    closed_at: datetime | None


@dataclass
class Ledger:
    accounts: dict[str, LedgerRow]  # by customer_id
    tasks: dict[str, LedgerRow]  # by task key


def load(con: Connection, crm: str, *, read_only: bool = False) -> Ledger:
    """The ledger rows of one CRM; on a read-only connection, empty when the table was never created."""
    if read_only:
        if not table_exists(con, ops.CRM_SYNC.schema, ops.CRM_SYNC.table):
            return Ledger({}, {})
    else:
        ops.ensure(con, ops.CRM_SYNC)
    rows = con.execute(
        f"""SELECT object, kizuna_key, crm_id, customer_id, reason, values_hash, sent_values, state, first_seen_on, closed_at
            FROM {ops.CRM_SYNC} WHERE crm = ?""",
        [crm],
    ).fetchall()
    ledger = Ledger({}, {})
    for r in rows:
        row = LedgerRow(*r)
        (ledger.accounts if row.object == ACCOUNT else ledger.tasks)[row.key] = row
    return ledger


def _apply(con: Connection, sql: str, columns: dict[str, list[object]], **params: object) -> None:
    """Run `sql` once over the rows given column by column, readable in it as the relation `v` (set-based: row by
    row, DuckDB takes milliseconds per row on a file)."""
    if not next(iter(columns.values()), None):
        return
    names = ", ".join(f"unnest(${name}::VARCHAR[]) AS {name}" for name in columns)
    con.execute(f"WITH v AS (SELECT {names}) {sql}", {**columns, **params})


def _now() -> datetime:
    return datetime.now().replace(microsecond=0)


def record_account_ids(con: Connection, crm: str, ids: Mapping[str, str]) -> None:
    """Remember each customer's CRM account id (nothing sent yet: no values hash)."""
    _apply(
        con,
        f"""INSERT INTO {ops.CRM_SYNC} (crm, object, kizuna_key, crm_id, customer_id, state, updated_at)
            SELECT $crm, '{ACCOUNT}', customer_id, crm_id, customer_id, 'created', $now FROM v
            ON CONFLICT (crm, object, kizuna_key) DO UPDATE SET crm_id = excluded.crm_id, updated_at = excluded.updated_at""",
        {"customer_id": list(ids), "crm_id": list(ids.values())},
        crm=crm,
        now=_now(),
    )


def forget_accounts(con: Connection, crm: str, customer_ids: Iterable[str]) -> None:
    """Accounts the CRM no longer has under the recorded id (deleted, merged): looked up again next run."""
    _apply(
        con,
        f"""DELETE FROM {ops.CRM_SYNC} WHERE crm = $crm AND object = '{ACCOUNT}'
            AND kizuna_key IN (SELECT customer_id FROM v)""",
        {"customer_id": list(customer_ids)},
        crm=crm,
    )


def record_account_values(con: Connection, crm: str, sent: Iterable[AccountPlan]) -> None:
    """The values the CRM accepted, so the next run sends only what changed."""
    accounts = list(sent)
    _apply(
        con,
        f"""UPDATE {ops.CRM_SYNC} t SET values_hash = v.values_hash, sent_values = v.sent_values, updated_at = $now
            FROM v WHERE t.crm = $crm AND t.object = '{ACCOUNT}' AND t.kizuna_key = v.customer_id""",
        {
            "customer_id": [a.customer_id for a in accounts],
            "values_hash": [a.values_hash for a in accounts],
            "sent_values": [values_json(a.values) for a in accounts],
        },
        crm=crm,
        now=_now(),
    )


def record_pending(con: Connection, crm: str, tasks: Iterable[TaskPlan], as_of: date) -> None:
    """Intent before the send: these tasks are about to be created."""
    pending = list(tasks)
    _apply(
        con,
        f"""INSERT INTO {ops.CRM_SYNC}
              (crm, object, kizuna_key, customer_id, reason, sent_values, state, first_seen_on, updated_at)
            SELECT $crm, '{TASK}', key, customer_id, reason, subject, 'pending', $as_of, $now FROM v
            ON CONFLICT DO NOTHING""",
        {
            "key": [t.key for t in pending],
            "customer_id": [t.customer_id for t in pending],
            "reason": [t.reason for t in pending],
            "subject": [t.subject for t in pending],
        },
        crm=crm,
        as_of=as_of,
        now=_now(),
    )


def record_created(con: Connection, crm: str, created: Mapping[str, str]) -> None:
    """Tasks the CRM holds now (created by this run, or found by key after a crash): key -> CRM id."""
    _apply(
        con,
        f"""UPDATE {ops.CRM_SYNC} t SET crm_id = v.crm_id, state = 'open', created_at = coalesce(t.created_at, $now),
                updated_at = $now
            FROM v WHERE t.crm = $crm AND t.object = '{TASK}' AND t.kizuna_key = v.key""",
        {"key": list(created), "crm_id": list(created.values())},
        crm=crm,
        now=_now(),
    )


def forget_pending(con: Connection, crm: str, keys: Iterable[str]) -> None:
    """Pending rows whose tasks the CRM refused or does not have: the next run plans them afresh."""
    _apply(
        con,
        f"""DELETE FROM {ops.CRM_SYNC} WHERE crm = $crm AND object = '{TASK}' AND state = 'pending'
            AND kizuna_key IN (SELECT key FROM v)""",
        {"key": list(keys)},
        crm=crm,
    )


def record_states(con: Connection, crm: str, states: Mapping[str, str]) -> None:
    """Task states read back from the CRM (key -> open/completed/deleted); closing stamps closed_at once."""
    _apply(
        con,
        f"""UPDATE {ops.CRM_SYNC} t SET state = v.state, updated_at = $now,
                closed_at = CASE WHEN v.state = 'open' THEN NULL ELSE coalesce(t.closed_at, $now) END
            FROM v WHERE t.crm = $crm AND t.object = '{TASK}' AND t.kizuna_key = v.key
              AND t.state IS DISTINCT FROM v.state""",
        {"key": list(states), "state": list(states.values())},
        crm=crm,
        now=_now(),
    )
