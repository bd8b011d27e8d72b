"""The Salesforce target: kizuna's account fields and tasks through Salesforce's REST, Tooling and Bulk 2.0 APIs.

Plain REST over httpx (salesforce_auth.py: OAuth client-credentials, retries, errors without secrets):
- setup (salesforce_setup.py): describe Account and Task, create missing custom fields through the Tooling API
  and grant the run-as user access to them; the task key field Task Kizuna_Key__c is an External ID, unique;
- owner_ids: SOQL on active Users by Email;
- update_accounts: sObject Collections (PATCH /composite/sobjects, 200 a request, allOrNone=false) below
  ``bulk_threshold`` updates, a Bulk API 2.0 ingest job at or above it (salesforce_bulk.py);
- upsert_tasks: the keys already in Salesforce are read first (queryAll, so a deleted or archived task is not made
  again) and kept as they are; the others go through an sObject Collections upsert by Kizuna_Key__c, so a rerun
  after a kill finds what the killed run made instead of duplicating it;
- task_states: queryAll on Task Id (IsDeleted or absent: deleted; IsClosed: completed).
See docs/crm.md, "Salesforce".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any, TypeVar

from pydantic import SecretStr

from kizuna.crm.salesforce_auth import SalesforceSession, soql_in_lists
from kizuna.crm.salesforce_bulk import NULL, bulk_update
from kizuna.crm.salesforce_setup import TASK_KEY_FIELD, api_name, setup_fields
from kizuna.crm.target import (
    AccountUpdate,
    FieldSpec,
    SetupChange,
    TargetStats,
    TaskSpec,
    TaskState,
    Value,
    WriteResult,
)

log = logging.getLogger(__name__)

COLLECTION_SIZE = 200  # sObject Collections' limit per request
PRIORITY = {"high": "High", "medium": "Normal", "low": "Low"}
T = TypeVar("T")


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def json_value(value: Value) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def csv_value(value: Value) -> str:
    if value is None or value == "":
        return NULL
    return value.isoformat() if isinstance(value, date) else str(value)


def record_error(result: Mapping[str, Any]) -> str:
    """One sObject Collections result's errors as text ("STATUS_CODE: message (fields)")."""
    parts = []
    for error in result.get("errors") or []:
        fields = f" ({', '.join(error['fields'])})" if error.get("fields") else ""
        parts.append(f"{error.get('statusCode', 'ERROR')}: {error.get('message', '')}{fields}")
    return "; ".join(parts) or "failed without an error message"


class SalesforceTarget:
    """A CrmTarget for one Salesforce org. `sleep` is how it waits (Retry-After, backoff, Bulk polls)."""

    name = "salesforce"

    def __init__(
        self,
        login_url: str,
        client_id: str,
        client_secret: SecretStr | str,
        *,
        api_version: str = "v62.0",
        timeout: float = 60.0,
        max_retries: int = 5,
        bulk_threshold: int = 2000,
        poll_interval: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        account_id_field: str | None = None,
    ) -> None:
        self.stats = TargetStats()
        self.account_id_field = account_id_field  # the Account field holding kizuna's customer_id, if any
        self.bulk_threshold = bulk_threshold
        self.poll_interval = poll_interval
        self.session = SalesforceSession(
            login_url,
            client_id,
            client_secret,
            api_version=api_version,
            timeout=timeout,
            max_retries=max_retries,
            stats=self.stats,
            sleep=sleep,
        )

    def __repr__(self) -> str:  # never the secret
        return f"SalesforceTarget(login_url={self.session.login_url!r}, bulk_threshold={self.bulk_threshold})"

    def close(self) -> None:
        self.session.close()

    # -- setup -------------------------------------------------------------------------------------------------

    def setup(self, fields: Sequence[FieldSpec], *, dry_run: bool) -> list[SetupChange]:
        return setup_fields(self.session, fields, dry_run=dry_run)

    # -- owners ------------------------------------------------------------------------------------------------

    def owner_ids(self, emails: Sequence[str]) -> dict[str, str]:
        by_lower: dict[str, list[str]] = {}
        for email in emails:
            by_lower.setdefault(email.strip().lower(), []).append(email)
        found: dict[str, str] = {}
        for listed in soql_in_lists(sorted(by_lower)):
            soql = f"SELECT Id, Email FROM User WHERE IsActive = true AND Email IN ({listed}) ORDER BY Id"
            for user in self.session.query("User by email", soql):
                for email in by_lower.get(str(user.get("Email") or "").lower(), []):
                    found.setdefault(email, str(user["Id"]))  # two active users, one address: the oldest Id
        return found

    # -- accounts ----------------------------------------------------------------------------------------------

    def update_accounts(self, updates: Sequence[AccountUpdate]) -> list[WriteResult]:
        results = [WriteResult(u.customer_id, u.crm_account_id) for u in updates if not u.values]  # nothing to send
        updates = [u for u in updates if u.values]
        if len(updates) >= self.bulk_threshold:
            return results + self._update_in_bulk(updates)
        path = self.session.data_path("/composite/sobjects")
        for chunk in batched(updates, COLLECTION_SIZE):
            records = [
                {
                    "attributes": {"type": "Account"},
                    "id": u.crm_account_id,
                    **{api_name(k): json_value(v) for k, v in u.values.items()},
                }
                for u in chunk
            ]
            body = {"allOrNone": False, "records": records}
            answer = self.session.call("Account update", "PATCH", path, "PATCH /composite/sobjects", json=body).json()
            for update, result in zip(chunk, answer, strict=True):
                ok = bool(result.get("success"))
                results.append(
                    WriteResult(
                        update.customer_id, update.crm_account_id if ok else None, None if ok else record_error(result)
                    )
                )
        return results

    def _update_in_bulk(self, updates: Sequence[AccountUpdate]) -> list[WriteResult]:
        columns = sorted({api_name(k) for u in updates for k in u.values})
        rows = [{"Id": u.crm_account_id, **{api_name(k): csv_value(v) for k, v in u.values.items()}} for u in updates]
        outcome = bulk_update(self.session, "Account", ["Id", *columns], rows, poll_interval=self.poll_interval)
        log.info("salesforce: %d account updates through Bulk API 2.0 jobs %s", len(updates), ", ".join(outcome.jobs))
        return [
            WriteResult(
                u.customer_id,
                None if (error := outcome.errors.get(u.crm_account_id)) else u.crm_account_id,
                error,
            )
            for u in updates
        ]

    # -- tasks -------------------------------------------------------------------------------------------------

    def upsert_tasks(self, tasks: Sequence[TaskSpec], owner_ids: Mapping[str, str]) -> list[WriteResult]:
        """One result per distinct key (a key given twice is sent once: the first one's values)."""
        first: dict[str, TaskSpec] = {}
        for given in tasks:
            first.setdefault(given.key, given)
        tasks = list(first.values())
        existing = self._tasks_by_key([t.key for t in tasks])
        results = [WriteResult(t.key, existing[t.key]) for t in tasks if t.key in existing]
        to_send = []
        for task in tasks:
            if task.key in existing:
                continue
            owner = owner_ids.get(task.owner_email)
            if owner is None:
                results.append(WriteResult(task.key, None, f"no active Salesforce user with email {task.owner_email}"))
            else:
                to_send.append((task, owner))
        path = self.session.data_path(f"/composite/sobjects/Task/{TASK_KEY_FIELD}")
        for chunk in batched(to_send, COLLECTION_SIZE):
            body = {"allOrNone": False, "records": [self._task_record(t, owner) for t, owner in chunk]}
            answer = self.session.call("Task upsert", "PATCH", path, "PATCH /composite/sobjects/Task", json=body).json()
            for (task, _), result in zip(chunk, answer, strict=True):
                ok = bool(result.get("success"))
                results.append(
                    WriteResult(task.key, str(result["id"]) if ok else None, None if ok else record_error(result))
                )
        return results

    @staticmethod
    def _task_record(task: TaskSpec, owner_id: str) -> dict[str, Any]:
        return {
            "attributes": {"type": "Task"},
            TASK_KEY_FIELD: task.key,
            "WhatId": task.crm_account_id,
            "OwnerId": owner_id,
            "Subject": task.subject[:255],
            "Description": task.body[:32000],
            "ActivityDate": task.due_date.isoformat(),
            "Priority": PRIORITY[task.priority],
            "Status": "Not Started",
        }

    def account_ids(self, customer_ids: Sequence[str]) -> dict[str, str]:
        """Account Ids by kizuna customer id: the `account_id_field` queried, or else the customer id is the Id
        (an unknown one is then a per-record error of the update)."""
        if self.account_id_field is None:
            return {c: c for c in customer_ids if len(c) in (15, 18) and c.isalnum()}
        found: dict[str, str] = {}
        field = self.account_id_field
        for listed in soql_in_lists(sorted(set(customer_ids))):
            soql = f"SELECT Id, {field} FROM Account WHERE {field} IN ({listed})"
            for account in self.session.query("Account by kizuna customer id", soql, all_rows=False):
                found[str(account[field])] = str(account["Id"])
        return found

    def find_tasks(self, keys: Sequence[str]) -> dict[str, str]:
        return self._tasks_by_key(keys)

    def _tasks_by_key(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for listed in soql_in_lists(sorted(set(keys))):
            soql = f"SELECT Id, {TASK_KEY_FIELD} FROM Task WHERE {TASK_KEY_FIELD} IN ({listed})"
            for task in self.session.query("Task by kizuna key", soql, all_rows=True):
                found[str(task[TASK_KEY_FIELD])] = str(task["Id"])
        return found

    def task_states(self, crm_ids: Sequence[str]) -> dict[str, TaskState]:
        states: dict[str, TaskState] = {crm_id: "deleted" for crm_id in crm_ids}  # absent (purged): deleted
        by_prefix = {crm_id[:15]: crm_id for crm_id in crm_ids}
        for listed in soql_in_lists(sorted(set(crm_ids))):
            soql = f"SELECT Id, IsClosed, IsDeleted FROM Task WHERE Id IN ({listed})"
            for task in self.session.query("Task state", soql, all_rows=True):
                crm_id = by_prefix.get(str(task["Id"])[:15])
                if crm_id is not None:
                    states[crm_id] = (
                        "deleted" if task.get("IsDeleted") else "completed" if task.get("IsClosed") else "open"
                    )
        return states
