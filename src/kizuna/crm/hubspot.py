"""The HubSpot target: kizuna's fields as company properties (group "kizuna"), its tasks as HubSpot tasks.

The HTTP calls go through the HubSpot connector's client wrapper (kizuna.connectors.hubspot_client.HubSpotApi:
the official client, retries honouring Retry-After and the rate-limit headers, errors without the token),
handed in by the pipeline: this package imports only kizuna.core. Each task carries its kizuna key in the task
property kizuna_task_key, so a task created by a run that was killed before it learnt the id is found again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any, Protocol, TypeVar

from kizuna.crm.target import (
    AccountUpdate,
    CrmError,
    FieldSpec,
    SetupChange,
    TargetStats,
    TaskSpec,
    TaskState,
    Value,
    WriteResult,
)

GROUP = "kizuna"
TASK_KEY = "kizuna_task_key"
TASK_TO_COMPANY = 192  # HubSpot-defined association type id: task to company
BATCH = 100  # HubSpot's batch endpoints take at most 100 inputs
SEARCH_IN_VALUES = 100  # values in one IN filter of a search
DUE_TIME_UTC = "09:00:00Z"  # 18:00 in Tokyo: a task is due by the end of its due day
# kizuna's field types as HubSpot's (type, fieldType)
HUBSPOT_TYPES = {
    "string": ("string", "text"),
    "text": ("string", "textarea"),
    "number": ("number", "number"),
    "date": ("date", "date"),
    "datetime": ("datetime", "date"),
    "enumeration": ("enumeration", "select"),
}
TASK_KEY_FIELD = FieldSpec(TASK_KEY, "kizuna task key", "string", (), "kizuna's idempotency key of the task.")
T = TypeVar("T")


class HubSpotCalls(Protocol):
    """The calls of kizuna.connectors.hubspot_client.HubSpotApi the target makes."""

    requests: int
    retries_after_429: int
    by_endpoint: dict[str, int]

    def search(self, object_type: str, request: dict[str, Any]) -> dict[str, Any]: ...
    def batch_read(self, object_type: str, ids: list[str], properties: list[str]) -> dict[str, Any]: ...
    def owners_page(self, *, archived: bool, after: str | None) -> dict[str, Any]: ...
    def batch_update(self, object_type: str, inputs: list[dict[str, Any]]) -> dict[str, Any]: ...
    def batch_create(self, object_type: str, inputs: list[dict[str, Any]]) -> dict[str, Any]: ...
    def properties(self, object_type: str) -> dict[str, Any]: ...
    def create_property(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]: ...
    def property_groups(self, object_type: str) -> dict[str, Any]: ...
    def create_property_group(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]: ...


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def property_value(value: Value) -> str:
    """A value as HubSpot's property API takes it; an empty string clears the property."""
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _error_ids(answer: dict[str, Any]) -> dict[str, str]:
    """id -> message of a 207 batch answer's errors (HubSpot names the ids in each error's context)."""
    failed: dict[str, str] = {}
    for error in answer.get("errors") or []:
        context = error.get("context") or {}
        for record_id in context.get("ids") or context.get("id") or []:
            failed[str(record_id)] = f"{error.get('category', 'ERROR')}: {error.get('message', '')}"[:200]
    return failed


class HubSpotTarget:
    name = "hubspot"

    def __init__(self, api: HubSpotCalls, account_id_property: str | None = None) -> None:
        self.api = api
        self.account_id_property = account_id_property
        self.stats = TargetStats()

    def _call(self, call: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return call(*args, **kwargs)
        except RuntimeError as exc:  # the wrapper's ConnectorError: already names the call, never the token
            raise CrmError(str(exc)) from None
        finally:
            self.stats.requests = self.api.requests
            self.stats.retries_after_429 = self.api.retries_after_429
            self.stats.by_endpoint = dict(self.api.by_endpoint)

    # -- setup -----------------------------------------------------------------------------------------------

    def setup(self, fields: Sequence[FieldSpec], *, dry_run: bool) -> list[SetupChange]:
        changes = self.setup_properties("companies", fields, dry_run=dry_run)
        return changes + self.setup_properties("tasks", [TASK_KEY_FIELD], dry_run=dry_run)

    def setup_properties(self, object_type: str, fields: Sequence[FieldSpec], *, dry_run: bool) -> list[SetupChange]:
        """Create the missing properties of one object type in the kizuna group; report each as found."""
        groups = {g.get("name") for g in self._call(self.api.property_groups, object_type).get("results") or []}
        if GROUP not in groups and not dry_run:
            self._call(self.api.create_property_group, object_type, {"name": GROUP, "label": "kizuna"})
        existing = {p.get("name"): p for p in self._call(self.api.properties, object_type).get("results") or []}
        changes = []
        for spec in fields:
            kind, field_type = HUBSPOT_TYPES[spec.type]
            have = existing.get(spec.name)
            label = f"{object_type}.{spec.name}"
            if have is None:
                if not dry_run:
                    body = {"name": spec.name, "label": spec.label, "type": kind, "fieldType": field_type,
                            "groupName": GROUP, "description": spec.description,
                            "options": [{"label": o, "value": o, "displayOrder": n, "hidden": False}
                                        for n, o in enumerate(spec.options)]}  # fmt: skip
                    self._call(self.api.create_property, object_type, body)
                changes.append(SetupChange(label, "create", f"{kind} ({field_type}) in group {GROUP}"))
            elif have.get("type") != kind:
                detail = f"exists as {have.get('type')}, kizuna writes {kind}: rename or delete it in HubSpot"
                changes.append(SetupChange(label, "conflict", detail))
            else:
                changes.append(SetupChange(label, "ok"))
        return changes

    # -- reads -----------------------------------------------------------------------------------------------

    def owner_ids(self, emails: Sequence[str]) -> dict[str, str]:
        wanted = {e.lower(): e for e in emails}
        found: dict[str, str] = {}
        after: str | None = None
        while True:
            page = self._call(self.api.owners_page, archived=False, after=after)
            for owner in page.get("results") or []:
                email = str(owner.get("email") or "").lower()
                if email in wanted:
                    found[wanted[email]] = str(owner["id"])
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return found

    def account_ids(self, customer_ids: Sequence[str]) -> dict[str, str]:
        prop = self.account_id_property
        if prop is None:
            # The customer id is the company id: no request (a company that is gone shows as OBJECT_NOT_FOUND in
            # the batch update, and the sync forgets it); HubSpot's record ids are numbers.
            return {c: c for c in customer_ids if c.isdigit()}
        found: dict[str, str] = {}
        for chunk in _chunks(list(customer_ids), SEARCH_IN_VALUES):
            for record in self._search_in("companies", prop, chunk):
                value = (record.get("properties") or {}).get(prop)
                if value:
                    found[str(value)] = str(record["id"])
        return found

    def _search_in(self, object_type: str, prop: str, values: Sequence[str]) -> Iterator[dict[str, Any]]:
        after: str | None = None
        while True:
            request = {
                "filter_groups": [[{"property_name": prop, "operator": "IN", "values": list(values)}]],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": [prop],
                "limit": 100,
                "after": after,
            }
            page = self._call(self.api.search, object_type, request)
            yield from page.get("results") or []
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return

    def find_tasks(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(list(keys), SEARCH_IN_VALUES):
            for record in self._search_in("tasks", TASK_KEY, chunk):
                key = (record.get("properties") or {}).get(TASK_KEY)
                if key:
                    found.setdefault(str(key), str(record["id"]))
        return found

    def task_states(self, crm_ids: Sequence[str]) -> dict[str, TaskState]:
        states: dict[str, TaskState] = {}
        for chunk in _chunks(list(crm_ids), BATCH):
            answer = self._call(self.api.batch_read, "tasks", list(chunk), ["hs_task_status"])
            for record in answer.get("results") or []:
                status = (record.get("properties") or {}).get("hs_task_status")
                states[str(record["id"])] = "completed" if status == "COMPLETED" else "open"
            states.update({i: "deleted" for i in chunk if i not in states})
        return states

    # -- writes ----------------------------------------------------------------------------------------------

    def update_accounts(self, updates: Sequence[AccountUpdate]) -> list[WriteResult]:
        results: list[WriteResult] = []
        for chunk in _chunks(list(updates), BATCH):
            inputs = [
                {"id": u.crm_account_id, "properties": {k: property_value(v) for k, v in u.values.items()}}
                for u in chunk
            ]
            answer = self._call(self.api.batch_update, "companies", inputs)
            failed = _error_ids(answer)
            done = {str(r.get("id")) for r in answer.get("results") or []}
            for u in chunk:
                error = failed.get(u.crm_account_id) or (None if u.crm_account_id in done else "not in the answer")
                results.append(WriteResult(u.customer_id, None if error else u.crm_account_id, error))
        return results

    def upsert_tasks(self, tasks: Sequence[TaskSpec], owner_ids: Mapping[str, str]) -> list[WriteResult]:
        existing = self.find_tasks([t.key for t in tasks])
        results = [WriteResult(t.key, existing[t.key]) for t in tasks if t.key in existing]
        new = [t for t in tasks if t.key not in existing]
        for chunk in _chunks(new, BATCH):
            answer = self._call(self.api.batch_create, "tasks", [self._task_input(t, owner_ids) for t in chunk])
            created = {
                str((r.get("properties") or {}).get(TASK_KEY)): str(r["id"]) for r in answer.get("results") or []
            }
            problems = "; ".join(str(e.get("message", "")) for e in answer.get("errors") or [])[:200]
            for t in chunk:
                crm_id = created.get(t.key)
                results.append(WriteResult(t.key, crm_id, None if crm_id else problems or "not created"))
        return results

    @staticmethod
    def _task_input(task: TaskSpec, owner_ids: Mapping[str, str]) -> dict[str, Any]:
        properties = {
            "hs_task_subject": task.subject,
            "hs_task_body": task.body,
            "hs_timestamp": f"{task.due_date.isoformat()}T{DUE_TIME_UTC}",
            "hs_task_status": "NOT_STARTED",
            "hs_task_priority": task.priority.upper(),
            "hs_task_type": "CALL" if task.key.startswith("call:") else "TODO",
            TASK_KEY: task.key,
        }
        owner = owner_ids.get(task.owner_email)
        if owner:
            properties["hubspot_owner_id"] = owner
        association = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": TASK_TO_COMPANY}
        return {"properties": properties, "associations": [{"to": {"id": task.crm_account_id}, "types": [association]}]}
