"""The write-back sync: the plan against the ledger, then only the differences through the target's batch calls.

Order of one run (docs/crm.md): read back the states of tasks kizuna created (completed or deleted ones are
closed in the ledger), resolve tasks left pending by a killed run (found by key: open; not found: planned
again), resolve new customers' CRM account ids, send changed account fields in chunks of CHUNK (the ledger
records each chunk), then create the new tasks in chunks, each chunk's intent written before it is sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TypeVar

from kizuna.core.connection import Connection
from kizuna.core.settings import Settings
from kizuna.crm import ledger as ledgers
from kizuna.crm.ledger import LIVE_TASK_STATES, Ledger
from kizuna.crm.plan import AccountPlan, Plan, TaskPlan, encode
from kizuna.crm.target import AccountUpdate, CrmError, CrmTarget, TaskSpec, Value

log = logging.getLogger(__name__)
CHUNK = 100  # objects per ledger write and per batch call (HubSpot's batch limit)
MAX_DIFF_LINES = 100  # per kind (accounts, tasks) in a dry run's diff; the rest is counted
T = TypeVar("T")


@dataclass
class SyncSummary:
    crm: str
    as_of: date
    dry_run: bool
    accounts_planned: int = 0
    accounts_updated: int = 0
    accounts_unchanged: int = 0
    accounts_not_in_crm: int = 0
    # Customers the CRM has no account for (billing-only customers, or not yet created there): their fields and
    # tasks wait until the account exists. Said every run, never an error: the CRM is the system of record.
    customers_not_in_crm: set[str] = field(default_factory=set)
    tasks_planned: int = 0
    tasks_created: int = 0
    tasks_recovered: int = 0  # pending after a killed run, found in the CRM by key
    tasks_skipped: dict[str, int] = field(default_factory=dict)  # why: already sent, open, done recently
    tasks_closed: int = 0  # completed or deleted in the CRM since the last run
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    retries_after_429: int = 0
    diff: list[str] = field(default_factory=list)

    def skip(self, why: str) -> None:
        self.tasks_skipped[why] = self.tasks_skipped.get(why, 0) + 1

    def lines(self) -> list[str]:
        """The summary for people (the CLI prints it; a flow logs it)."""
        verb = "would" if self.dry_run else "did"
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.tasks_skipped.items())) or "none"
        return [
            f"crm sync ({self.crm}, as of {self.as_of}{', dry run' if self.dry_run else ''}): {verb} update "
            f"{self.accounts_updated} of {self.accounts_planned} accounts ({self.accounts_unchanged} unchanged, "
            f"{self.accounts_not_in_crm} not in the CRM), {verb} create {self.tasks_created} of "
            f"{self.tasks_planned} tasks (skipped: {skipped}; recovered after a kill: {self.tasks_recovered}; "
            f"closed in the CRM: {self.tasks_closed})",
            f"requests: {self.requests}, retries after 429: {self.retries_after_429}, errors: {len(self.errors)}",
            *self.errors[:20],
            *self._not_in_crm(),
        ]

    def _not_in_crm(self) -> list[str]:
        if not self.customers_not_in_crm:
            return []
        shown = sorted(self.customers_not_in_crm)
        more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
        return [
            f"warning: {len(shown)} customers have no account in {self.crm} (matched by customer id), so their "
            f"fields and tasks wait: {', '.join(shown[:5])}{more}"
        ]


def changed_fields(plan: AccountPlan, sent_values: str | None) -> dict[str, Value]:
    """The plan's fields whose values differ from what the CRM last accepted (all of them the first time)."""
    before = json.loads(sent_values) if sent_values else {}
    return {k: v for k, v in plan.values.items() if k not in before or before[k] != encode(v)}


def sync(con: Connection, settings: Settings, target: CrmTarget, plan: Plan, *, dry_run: bool) -> SyncSummary:
    """Bring the CRM to the plan. `con` is writable unless dry_run; a dry run sends and writes nothing."""
    summary = SyncSummary(target.name, plan.as_of, dry_run)
    ledger = ledgers.load(con, target.name, read_only=dry_run)
    if not dry_run:
        _read_back(con, target, ledger, summary)
        ledger = ledgers.load(con, target.name)
        _resolve_accounts(con, target, plan, ledger, summary)
        ledger = ledgers.load(con, target.name)
    _sync_accounts(con, target, plan, ledger, summary)
    _sync_tasks(con, settings, target, plan, ledger, summary)
    summary.requests = target.stats.requests
    summary.retries_after_429 = target.stats.retries_after_429
    return summary


def _chunks(items: Sequence[T], size: int = CHUNK) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _read_back(con: Connection, target: CrmTarget, ledger: Ledger, summary: SyncSummary) -> None:
    """Task states from the CRM, and pending tasks of a killed run resolved by key."""
    live = {row.crm_id: key for key, row in ledger.tasks.items() if row.state in ("created", "open") and row.crm_id}
    if live:
        states = target.task_states(list(live))
        closed = {live[crm_id]: s for crm_id, s in states.items() if s != "open" and crm_id in live}
        ledgers.record_states(con, target.name, closed)
        summary.tasks_closed = len(closed)
    pending = [key for key, row in ledger.tasks.items() if row.state == "pending"]
    if pending:
        found = target.find_tasks(pending)
        ledgers.record_created(con, target.name, found)
        ledgers.forget_pending(con, target.name, [k for k in pending if k not in found])
        summary.tasks_recovered = len(found)


def _resolve_accounts(con: Connection, target: CrmTarget, plan: Plan, ledger: Ledger, summary: SyncSummary) -> None:
    wanted = {a.customer_id for a in plan.accounts} | {t.customer_id for t in plan.tasks}
    missing = sorted(c for c in wanted if not (row := ledger.accounts.get(c)) or not row.crm_id)
    if missing:
        ledgers.record_account_ids(con, target.name, target.account_ids(missing))


def _sync_accounts(con: Connection, target: CrmTarget, plan: Plan, ledger: Ledger, summary: SyncSummary) -> None:
    summary.accounts_planned = len(plan.accounts)
    updates: list[tuple[AccountPlan, AccountUpdate]] = []
    for account in plan.accounts:
        row = ledger.accounts.get(account.customer_id)
        if row is not None and row.values_hash == account.values_hash:
            summary.accounts_unchanged += 1
            continue
        if not summary.dry_run and (row is None or not row.crm_id):
            summary.accounts_not_in_crm += 1
            summary.customers_not_in_crm.add(account.customer_id)
            continue
        changed = changed_fields(account, row.sent_values if row else None)
        crm_id = row.crm_id if row and row.crm_id else "?"
        updates.append((account, AccountUpdate(account.customer_id, crm_id, changed)))
    for _, update in updates[:MAX_DIFF_LINES]:
        shown = ", ".join(f"{k}={encode(v)!r}" for k, v in update.values.items())
        summary.diff.append(f"account {update.customer_id} ({update.crm_account_id}): {shown}")
    if len(updates) > MAX_DIFF_LINES:
        summary.diff.append(f"... and {len(updates) - MAX_DIFF_LINES} more accounts")
    if summary.dry_run:
        summary.accounts_updated = len(updates)
        return
    for chunk in _chunks(updates):
        try:
            results = target.update_accounts([u for _, u in chunk])
        except CrmError as exc:  # what went before is recorded; the next run sends the rest
            summary.errors.append(str(exc))
            break
        ok = {r.key for r in results if r.error is None}
        summary.errors += [f"account {r.key}: {r.error}" for r in results if r.error is not None]
        ledgers.forget_accounts(con, target.name, [r.key for r in results if "NOT_FOUND" in (r.error or "")])
        ledgers.record_account_values(con, target.name, [a for a, _ in chunk if a.customer_id in ok])
        summary.accounts_updated += len(ok)


def _wanted_tasks(settings: Settings, plan: Plan, ledger: Ledger, summary: SyncSummary) -> list[TaskPlan]:
    """The plan's tasks that no ledger row stands for: not sent, none open for the reason, none done lately."""
    summary.tasks_planned = len(plan.tasks)
    recent = datetime.now() - timedelta(days=settings.crm_task_cooldown_days)
    by_reason: dict[str, list[ledgers.LedgerRow]] = {}
    for row in ledger.tasks.values():
        by_reason.setdefault(row.reason or row.key, []).append(row)
    wanted = []
    for task in plan.tasks:
        rows = by_reason.get(task.reason, [])
        if task.key in ledger.tasks:
            summary.skip("already sent")
        elif any(r.state in LIVE_TASK_STATES for r in rows):
            summary.skip("open in the CRM")
        elif any(r.closed_at is not None and r.closed_at >= recent for r in rows):
            summary.skip("done recently")
        else:
            wanted.append(task)
    return wanted


def _sync_tasks(
    con: Connection,
    settings: Settings,
    target: CrmTarget,
    plan: Plan,
    ledger: Ledger,
    summary: SyncSummary,
) -> None:
    wanted = _wanted_tasks(settings, plan, ledger, summary)
    queue = settings.crm_queue_email or ""
    for task in wanted[:MAX_DIFF_LINES]:
        summary.diff.append(f"task {task.key}: for {task.owner_email or queue or '(no owner)'}, due {task.due_date}")
    if len(wanted) > MAX_DIFF_LINES:
        summary.diff.append(f"... and {len(wanted) - MAX_DIFF_LINES} more tasks")
    if summary.dry_run:
        summary.tasks_created = len(wanted)
        return
    emails = sorted({t.owner_email for t in wanted if t.owner_email} | ({queue} if queue else set()))
    owners = target.owner_ids(emails) if wanted else {}
    specs = []
    for task in wanted:
        row = ledger.accounts.get(task.customer_id)
        if row is None or not row.crm_id:
            summary.skip("customer not in the CRM")
            summary.customers_not_in_crm.add(task.customer_id)
            continue
        owner = task.owner_email if task.owner_email in owners else queue
        specs.append((task, TaskSpec(task.key, task.customer_id, row.crm_id, owner, task.subject, task.body,
                                     task.due_date, task.priority)))  # fmt: skip
    for pairs in _chunks(specs):
        ledgers.record_pending(con, target.name, [t for t, _ in pairs], plan.as_of)  # intent before the send
        try:
            results = target.upsert_tasks([s for _, s in pairs], owners)
        except CrmError as exc:  # the batch's fate is unknown: its rows stay pending, resolved next run
            summary.errors.append(str(exc))
            break
        created = {r.key: r.crm_id for r in results if r.crm_id and r.error is None}
        ledgers.record_created(con, target.name, created)
        ledgers.forget_pending(con, target.name, [r.key for r in results if r.error is not None])
        summary.errors += [f"task {r.key}: {r.error}" for r in results if r.error is not None]
        summary.tasks_created += len(created)
