"""Salesforce setup: kizuna's custom fields on Account and Task, and the run-as user's access to them.

Describe says what exists (`GET /sobjects/{object}/describe`, which lists only the fields the user can see).
A missing field is created through the Tooling API (`POST /tooling/sobjects/CustomField`; Task fields are
Activity fields in the metadata). Salesforce gives a field created this way no field-level security, so the
user still cannot see or write it: setup then grants Read and Edit on it through the permission set
``Kizuna_Integration`` (created when absent) and assigns that set to the run-as user. A field that exists but is
invisible (its create answers DUPLICATE_DEVELOPER_NAME) gets the same grant. See docs/crm.md, "Salesforce".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kizuna.crm.salesforce_auth import SalesforceSession, soql_quote
from kizuna.crm.target import CrmError, FieldSpec, SetupChange

TASK_KEY_FIELD = "Kizuna_Key__c"
TASK_KEY = FieldSpec("kizuna_key", "Kizuna key", "string", description="kizuna's idempotency key of the task")
PERMISSION_SET = "Kizuna_Integration"
# kizuna's field type -> (describe's type, the Tooling API's CustomField metadata)
FIELD_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "string": ("string", {"type": "Text", "length": 255}),
    "text": ("textarea", {"type": "LongTextArea", "length": 32768, "visibleLines": 5}),
    "number": ("double", {"type": "Number", "precision": 18, "scale": 4}),
    "date": ("date", {"type": "Date"}),
    "datetime": ("datetime", {"type": "DateTime"}),
    "enumeration": ("picklist", {"type": "Picklist"}),
}
NO_GRANT = (
    "grant Read and Edit on the Kizuna fields to the run-as user by hand (a permission set), or give it Manage "
    "Profiles and Permission Sets and Assign Permission Sets (docs/crm.md)"
)


def api_name(name: str) -> str:
    """kizuna's neutral field name as a Salesforce custom field API name: kizuna_rank -> Kizuna_Rank__c."""
    parts = [p for p in name.split("_") if p]
    if not parts or not all(p.isascii() and p.isalnum() for p in parts):
        raise ValueError(f"field name {name!r}: use ASCII letters, digits and single underscores")
    result = "_".join(p[0].upper() + p[1:] for p in parts) + "__c"
    if len(result) > 40 or not result[0].isalpha():
        raise ValueError(f"field name {name!r}: {result} is not a valid Salesforce API name (40 characters at most)")
    return result


def setup_fields(session: SalesforceSession, fields: Sequence[FieldSpec], *, dry_run: bool) -> list[SetupChange]:
    """One SetupChange per Account field and the Task key: create (or would create), ok, or conflict."""
    wanted = [("Account", spec) for spec in fields] + [("Task", TASK_KEY)]
    described = {sobject: describe(session, sobject) for sobject in ("Account", "Task")}
    changes, to_grant = [], []
    for sobject, spec in wanted:
        full_name = f"{sobject}.{api_name(spec.name)}"
        have = described[sobject].get(api_name(spec.name))
        if have is not None:
            changes.append(compare(full_name, spec, have, is_key=sobject == "Task"))
        elif dry_run:
            changes.append(SetupChange(full_name, "create", "would create"))
        else:
            changes.append(create_field(session, sobject, spec, is_key=sobject == "Task"))
            to_grant.append(full_name)
    if to_grant:
        grant_access(session, to_grant)
    return changes


def describe(session: SalesforceSession, sobject: str) -> dict[str, dict[str, Any]]:
    path = session.data_path(f"/sobjects/{sobject}/describe")
    payload = session.call(f"{sobject} describe", "GET", path, "GET /sobjects/describe").json()
    return {f["name"]: f for f in payload.get("fields") or []}


def compare(full_name: str, spec: FieldSpec, have: Mapping[str, Any], *, is_key: bool) -> SetupChange:
    want_type = FIELD_TYPES[spec.type][0]
    if have.get("type") != want_type:
        return SetupChange(full_name, "conflict", f"is {have.get('type')}, kizuna writes {want_type}")
    if is_key and not (have.get("externalId") and have.get("unique")):
        return SetupChange(full_name, "conflict", "must be an External ID with unique values (docs/crm.md)")
    if not have.get("updateable", True):
        return SetupChange(full_name, "conflict", "not editable by the run-as user (field-level security)")
    present = {str(v.get("value")) for v in have.get("picklistValues") or [] if v.get("active", True)}
    missing = [o for o in spec.options if o not in present]
    if missing:
        return SetupChange(full_name, "conflict", f"picklist lacks {', '.join(missing)}")
    return SetupChange(full_name, "ok")


def create_field(session: SalesforceSession, sobject: str, spec: FieldSpec, *, is_key: bool) -> SetupChange:
    full_name = f"{sobject}.{api_name(spec.name)}"
    metadata: dict[str, Any] = {"label": spec.label[:40], "description": spec.description or "Written by kizuna"}
    metadata.update(FIELD_TYPES[spec.type][1])
    if is_key:
        metadata.update(externalId=True, unique=True, caseSensitive=True)
    if spec.type == "enumeration":
        values = [{"fullName": o, "label": o, "default": False} for o in spec.options]
        metadata["valueSet"] = {"restricted": True, "valueSetDefinition": {"sorted": False, "value": values}}
    owner = "Activity" if sobject == "Task" else sobject  # Task fields are Activity fields in the metadata
    body = {"FullName": f"{owner}.{api_name(spec.name)}", "Metadata": metadata}
    path = session.data_path("/tooling/sobjects/CustomField")
    what = f"{full_name} create"
    response = session.call(what, "POST", path, "POST /tooling/sobjects/CustomField", json=body, ok=(200, 201, 400))
    if response.status_code != 400:
        return SetupChange(full_name, "create", f"created ({metadata['type']})")
    if "DUPLICATE_DEVELOPER_NAME" not in response.text:
        raise CrmError(f"salesforce: {what}: the Tooling API refused it: {session.scrub(response.text[:500])}")
    if api_name(spec.name) in describe(session, sobject):  # a retried create: the first one's answer was lost
        return SetupChange(full_name, "create", "created (its first answer was lost)")
    return SetupChange(full_name, "create", f"existed without access for the run-as user: granted by {PERMISSION_SET}")


def grant_access(session: SalesforceSession, full_names: Sequence[str]) -> None:
    """Read and Edit on `full_names` ("Account.X__c") through the permission set, assigned to the run-as user."""
    what = f"{PERMISSION_SET} permission set"
    soql = f"SELECT Id FROM PermissionSet WHERE Name = {soql_quote(PERMISSION_SET)}"
    found = [str(r["Id"]) for r in session.query(what, soql)]
    if found:
        permission_set = found[0]
    else:
        created = {"Name": PERMISSION_SET, "Label": "Kizuna Integration", "Description": "Access to kizuna's fields"}
        permission_set = str(_create(session, what, "PermissionSet", created)["id"])
    records = [
        {
            "attributes": {"type": "FieldPermissions"},
            "ParentId": permission_set,
            "SobjectType": name.split(".")[0],
            "Field": name,
            "PermissionsRead": True,
            "PermissionsEdit": True,
        }
        for name in full_names
    ]
    path = session.data_path("/composite/sobjects")
    body = {"allOrNone": False, "records": records}
    answer = session.call(f"{what} field access", "POST", path, "POST /composite/sobjects", json=body).json()
    refused = [
        f"{name}: {e.get('statusCode')}: {e.get('message')}"
        for name, result in zip(full_names, answer, strict=True)
        for e in result.get("errors") or []
        if not result.get("success") and e.get("statusCode") != "DUPLICATE_VALUE"  # granted before
    ]
    if refused:
        raise CrmError(f"salesforce: {what}: field access refused ({'; '.join(refused)}); {NO_GRANT}")
    user = session.user_id
    soql = (
        "SELECT Id FROM PermissionSetAssignment WHERE "
        f"PermissionSetId = {soql_quote(permission_set)} AND AssigneeId = {soql_quote(user)}"
    )
    if not list(session.query(what, soql)):
        _create(
            session,
            f"{what} assignment",
            "PermissionSetAssignment",
            {"PermissionSetId": permission_set, "AssigneeId": user},
        )


def _create(session: SalesforceSession, what: str, sobject: str, body: dict[str, Any]) -> dict[str, Any]:
    path = session.data_path(f"/sobjects/{sobject}")
    response = session.call(what, "POST", path, f"POST /sobjects/{sobject}", json=body, ok=(200, 201, 400, 403))
    if response.status_code in (400, 403):
        raise CrmError(f"salesforce: {what}: {response.status_code} {session.scrub(response.text[:300])}; {NO_GRANT}")
    result: dict[str, Any] = response.json()
    return result
