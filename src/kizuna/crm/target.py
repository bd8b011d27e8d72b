"""What a CRM target is: the few calls the sync makes, whatever the CRM (HubSpot, Salesforce).

The sync (plan, ledger, diff) is CRM-neutral and speaks only these types; a target turns them into its API's
batch calls, honours its rate limits (Retry-After) and pages its answers. Every method takes and returns plain
values, so a dry run can print exactly what would be sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, Protocol

FieldType = Literal["string", "text", "number", "date", "datetime", "enumeration"]
TaskState = Literal["open", "completed", "deleted"]
Value = str | float | int | date | None


class CrmError(RuntimeError):
    """A CRM call failed after its retries. The message names the CRM, the object and the call, never a secret."""


@dataclass(frozen=True)
class FieldSpec:
    """A custom field kizuna writes on the CRM's account object (HubSpot company, Salesforce Account).

    `name` is kizuna's neutral name (e.g. "kizuna_rank"); each target maps it to its own API name
    (HubSpot: the same; Salesforce: "Kizuna_Rank__c").
    """

    name: str
    label: str
    type: FieldType
    options: tuple[str, ...] = ()  # enumeration values
    description: str = ""


@dataclass(frozen=True)
class AccountUpdate:
    """New values for one account's kizuna fields; only changed fields are in `values`."""

    customer_id: str  # kizuna's key
    crm_account_id: str  # the CRM's id of the account (HubSpot company id, Salesforce Account Id)
    values: Mapping[str, Value]


@dataclass(frozen=True)
class TaskSpec:
    """A task kizuna wants done. `key` is kizuna's idempotency key: the same key never makes two tasks."""

    key: str
    customer_id: str
    crm_account_id: str
    owner_email: str  # the person the task is for (the account's owner or the inside-sales queue's user)
    subject: str
    body: str
    due_date: date
    priority: Literal["high", "medium", "low"] = "medium"


@dataclass(frozen=True)
class WriteResult:
    """One object's outcome in a batch: the CRM id on success, the CRM's error text otherwise."""

    key: str  # customer_id for accounts, TaskSpec.key for tasks
    crm_id: str | None
    error: str | None = None


@dataclass(frozen=True)
class SetupChange:
    """What `kizuna crm setup` did or would do to one field."""

    field: str
    action: Literal["create", "ok", "conflict"]
    detail: str = ""


@dataclass
class TargetStats:
    """Counters a target keeps for the run summary and the benchmark."""

    requests: int = 0
    retries_after_429: int = 0
    waited_seconds: float = 0.0
    by_endpoint: dict[str, int] = field(default_factory=dict)


class CrmTarget(Protocol):
    name: str  # "hubspot" | "salesforce"
    stats: TargetStats

    def setup(self, fields: Sequence[FieldSpec], *, dry_run: bool) -> list[SetupChange]:
        """Create missing custom fields (account object, and the task key field the target needs); report each."""
        ...

    def account_ids(self, customer_ids: Sequence[str]) -> dict[str, str]:
        """The CRM account id of each kizuna customer_id found in the CRM; customers not found are absent."""
        ...

    def find_tasks(self, keys: Sequence[str]) -> dict[str, str]:
        """The CRM id of each task kizuna created with one of these keys (its key field), live ones only."""
        ...

    def owner_ids(self, emails: Sequence[str]) -> dict[str, str]:
        """The CRM user/owner id of each known, active email; unknown emails are absent."""
        ...

    def update_accounts(self, updates: Sequence[AccountUpdate]) -> list[WriteResult]:
        """Write the values through batch endpoints; one result per update, in any order."""
        ...

    def upsert_tasks(self, tasks: Sequence[TaskSpec], owner_ids: Mapping[str, str]) -> list[WriteResult]:
        """Create each task unless one with its key already exists in the CRM (then return that one's id)."""
        ...

    def task_states(self, crm_ids: Sequence[str]) -> dict[str, TaskState]:
        """The state of each task kizuna created; a task no longer found is "deleted"."""
        ...
