"""The HubSpot stand-in's write endpoints (kizuna's CRM write-back), in the shapes of HubSpot's CRM v3 spec.

- POST /crm/v3/objects/{type}/batch/update   {"inputs": [{"id", "properties"}]} (<= 100): 200, or 207 with
  OBJECT_NOT_FOUND errors naming the ids not found
- POST /crm/v3/objects/{type}/batch/create   {"inputs": [{"properties", "associations"}]} (<= 100): 201; tasks
  need hs_timestamp (400 otherwise, as HubSpot answers), associations need a live target
- GET/POST /crm/v3/properties/{type} and /crm/v3/properties/{type}/groups (409 when the name exists)
"""

from __future__ import annotations

from typing import Any

from tests.standins import hubspot_api as api

# object type id of each association's target, by HubSpot-defined association type id
ASSOCIATION_TARGETS = {192: "companies", 204: "contacts", 216: "deals"}
MAX_BATCH = 100


# A property's type -> the field types HubSpot accepts with it (its properties API refuses other pairs).
FIELD_TYPES: dict[str, tuple[str, ...]] = {
    "string": ("text", "textarea", "file", "html", "phonenumber"),
    "number": ("number",),
    "date": ("date",),
    "datetime": ("date",),
    "enumeration": ("select", "radio", "checkbox", "booleancheckbox"),
    "bool": ("booleancheckbox",),
}


def route(
    handler: Any, state: api.StandinState, method: str, path: str, body: Any
) -> tuple[int, dict[str, Any]] | None:
    """The answer to a write request, or None when the path is not one of these endpoints."""
    parts = path.strip("/").split("/")
    body = body if isinstance(body, dict) else {}
    if len(parts) == 6 and parts[:3] == ["crm", "v3", "objects"] and parts[4] == "batch" and method == "POST":
        if parts[5] == "update":
            return _batch_update(handler, state, parts[3], body)
        if parts[5] == "create":
            return _batch_create(handler, state, parts[3], body)
    if len(parts) >= 4 and parts[:3] == ["crm", "v3", "properties"]:
        kind = "groups" if len(parts) == 5 and parts[4] == "groups" else "properties" if len(parts) == 4 else None
        if kind is not None:
            store = state.properties.setdefault((parts[3], kind), {})
            if method == "GET":
                return 200, {"results": list(store.values())}
            return _create_definition(state, store, body, kind, parts[3])
    return None


def _inputs(body: dict[str, Any]) -> list[dict[str, Any]]:
    inputs = body.get("inputs") or []
    if len(inputs) > MAX_BATCH:
        raise api._Problem(400, f"at most {MAX_BATCH} inputs")
    return inputs


def _batch_update(handler: Any, state: api.StandinState, object_type: str, body: dict[str, Any]) -> Any:
    inputs = _inputs(body)
    results, missing = [], []
    with state.lock:
        for item in inputs:
            record_id = str(item.get("id"))
            obj = state.objects.get(object_type, {}).get(record_id)
            if obj is None or obj.archived_ms is not None:
                missing.append(record_id)
                continue
            state.update(object_type, record_id, **(item.get("properties") or {}))
            results.append(state.view(obj, list((item.get("properties") or {}).keys())))
    answer: dict[str, Any] = {"status": "COMPLETE", "results": results, **handler._batch_times()}
    if missing:
        answer["numErrors"] = 1
        answer["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not update some records",
                "context": {"ids": missing},
                "errors": [],
                "links": {},
            }
        ]
    return (207 if missing else 200), answer


def _batch_create(handler: Any, state: api.StandinState, object_type: str, body: dict[str, Any]) -> Any:
    inputs = _inputs(body)
    with state.lock:
        for n, item in enumerate(inputs):  # validate the whole batch first: HubSpot creates all or none
            props = item.get("properties") or {}
            if object_type == "tasks" and not props.get("hs_timestamp"):
                raise api._Problem(400, f"inputs[{n}]: hs_timestamp is required for tasks")
            for link in item.get("associations") or []:
                type_ids = [t.get("associationTypeId") for t in link.get("types") or []]
                target = ASSOCIATION_TARGETS.get(type_ids[0] if type_ids else 0)
                to = str((link.get("to") or {}).get("id"))
                if target is None or to not in state.objects.get(target, {}):
                    raise api._Problem(400, f"inputs[{n}]: association to {to} is not valid", "INVALID_ASSOCIATION")
        results = []
        for item in inputs:
            props = dict(item.get("properties") or {})
            if object_type == "tasks":
                props.setdefault("hs_task_status", "NOT_STARTED")
            record_id = state.create(object_type, props)
            for link in item.get("associations") or []:
                type_id = link["types"][0]["associationTypeId"]
                target_id = str(link["to"]["id"])
                links = state.associations.setdefault((object_type, record_id), {})
                links.setdefault(ASSOCIATION_TARGETS[type_id], {})[target_id] = {type_id}
            obj = state.objects[object_type][record_id]
            results.append(state.view(obj, list(props)))
    return 201, {"status": "COMPLETE", "results": results, **handler._batch_times()}


def _create_definition(
    state: api.StandinState, store: dict[str, dict[str, Any]], body: dict[str, Any], kind: str, object_type: str
) -> tuple[int, dict[str, Any]]:
    name = str(body.get("name") or "")
    if not name:
        raise api._Problem(400, "name is required")
    if name in store:
        raise api._Problem(409, f"A {kind[:-1]} named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
    if kind == "properties":
        if body.get("fieldType") not in FIELD_TYPES.get(str(body.get("type")), ()):
            raise api._Problem(400, f"fieldType {body.get('fieldType')} is not valid for type {body.get('type')}")
        groups = state.properties.get((object_type, "groups"), {})
        if body.get("groupName") not in groups and body.get("groupName") not in api.DEFAULT_GROUPS:
            raise api._Problem(400, f"property group {body.get('groupName')} does not exist")
        definition = {
            "name": name,
            "label": body.get("label", name),
            "type": body.get("type"),
            "fieldType": body.get("fieldType"),
            "groupName": body.get("groupName"),
            "description": body.get("description", ""),
            "options": body.get("options") or [],
            "hidden": False,
            "formField": False,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": bool(body.get("hasUniqueValue")),
            "modificationMetadata": {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": False},
            "createdAt": api.iso(state.clock_ms),
            "updatedAt": api.iso(state.clock_ms),
            "archived": False,
        }
    else:
        definition = {"name": name, "label": body.get("label", name), "displayOrder": -1, "archived": False}
    store[name] = definition
    return 201, definition
