"""A Salesforce org stand-in on 127.0.0.1: OAuth, describe, SOQL with paging, Tooling, sObject Collections, Bulk 2.0.

Speaks what kizuna's Salesforce target calls, in Salesforce's documented shapes:

- POST  /services/oauth2/token                       client-credentials flow (form); access_token, instance_url
  (this server), id, token_type, issued_at, signature; a wrong client answers 400 {"error","error_description"}
- GET   /services/data/vXX.X/sobjects/{Account|Task}/describe   fields with name, type, custom, externalId, unique,
  updateable, picklistValues
- GET   .../query?q=  and  .../queryAll?q=           a small SOQL: SELECT f, ... FROM X [WHERE c AND c ...]
  [ORDER BY f], c being `F = 'x'|true|false` or `F IN ('a', ...)`; text compares case-insensitively; pages of
  ``query_page`` records with nextRecordsUrl (.../query/01gXX-2000); queryAll also returns deleted records
- POST  .../tooling/sobjects/CustomField             {"FullName": "Account.X__c" | "Activity.X__c", "Metadata"}
- PATCH .../composite/sobjects                       update, up to 200 records, allOrNone, per-record results
- PATCH .../composite/sobjects/{type}/{extIdField}   upsert by external id (created true/false)
- POST/PUT/PATCH/GET .../jobs/ingest[/{id}[/batches|/successfulResults|/failedResults]]   Bulk API 2.0 update
  jobs (one upload per job; empty cell = unchanged, #N/A = null; InProgress for ``job_polls_in_progress`` polls)

Errors are Salesforce's: a whole request's as [{"message", "errorCode", "fields"}], a record's in a collection
as {"success": false, "errors": [{"statusCode", "message", "fields"}]} (e.g. INVALID_CROSS_REFERENCE_KEY for an
unknown Account id). Faults (`StandinState.fail`): "429" or "503" with Retry-After, "limit" (403
REQUEST_LIMIT_EXCEEDED with Retry-After), "500", "expire" (every token becomes invalid: 401 INVALID_SESSION_ID),
"drop" (close the connection unanswered, nothing done) and "drop-after" (do the work, then close unanswered).
``delay`` makes every answer that much slower (the benchmark's 100 ms).
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.standins.serving import ServedInThread, StandinHandler, StandinServer

CLIENT_ID = "3MVG9standin.kizuna.connected.app.consumer.key"
CLIENT_SECRET = "F00DCAFE1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF12345678"
ORG_ID = "00D5g00000KIZUNA"
PREFIX = {
    "Account": "001",
    "Task": "00T",
    "User": "005",
    "Job": "750",
    "CustomField": "00N",
    "PermissionSet": "0PS",
    "FieldPermissions": "01k",
    "PermissionSetAssignment": "0Pa",
}
INTEGRATION_USER = "0055g0000INTEGRAAA"  # the connected app's run-as user
MAX_COLLECTION = 200
DATA = re.compile(r"/services/data/(v\d+\.\d)(/.*)")
STANDARD_FIELDS: dict[str, list[tuple[str, str]]] = {
    "Account": [("Id", "id"), ("Name", "string"), ("OwnerId", "reference"), ("IsDeleted", "boolean")],
    "Task": [
        ("Id", "id"),
        ("Subject", "combobox"),
        ("WhatId", "reference"),
        ("OwnerId", "reference"),
        ("ActivityDate", "date"),
        ("Status", "picklist"),
        ("Priority", "picklist"),
        ("Description", "textarea"),
        ("IsClosed", "boolean"),
        ("IsDeleted", "boolean"),
    ],
    "User": [("Id", "id"), ("Email", "email"), ("IsActive", "boolean")],
    "PermissionSet": [("Id", "id"), ("Name", "string"), ("Label", "string"), ("Description", "textarea")],
    "FieldPermissions": [
        ("Id", "id"),
        ("ParentId", "reference"),
        ("SobjectType", "string"),
        ("Field", "string"),
        ("PermissionsRead", "boolean"),
        ("PermissionsEdit", "boolean"),
    ],
    "PermissionSetAssignment": [("Id", "id"), ("PermissionSetId", "reference"), ("AssigneeId", "reference")],
}
DESCRIBE_TYPE = {
    "Text": "string",
    "LongTextArea": "textarea",
    "Number": "double",
    "Date": "date",
    "Picklist": "picklist",
}


@dataclass
class Fault:
    """Fail matching requests: let `skip` through, then fail `times` of them (None: all that follow)."""

    kind: str
    match: str = ""  # a substring of "METHOD /path" (no query)
    skip: int = 0
    times: int | None = 1
    retry_after: str = "1"
    seen: int = 0
    fired: int = 0

    def applies(self, request_line: str) -> bool:
        if self.match not in request_line or (self.times is not None and self.fired >= self.times):
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        self.fired += 1
        return True


@dataclass
class Job:
    id: str
    object: str
    operation: str
    state: str = "Open"
    data: str | None = None
    polls: int = 0
    successful: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)


@dataclass
class StandinState:
    """The org: records by object and Id, custom fields, users, jobs, faults; tests change them between calls."""

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    query_page: int = 2000
    job_polls_in_progress: int = 1
    delay: float = 0.0
    echo_secret_in_errors: bool = False  # a worst case: the token endpoint repeats what it was sent
    fls_enforced: bool = False  # custom fields are invisible to the run-as user until a permission set grants them
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    custom_fields: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # object -> name -> describe
    tokens: set[str] = field(default_factory=set)
    jobs: dict[str, Job] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # "METHOD /path", in order
    cursors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    stop: threading.Event = field(default_factory=threading.Event)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, kind: str) -> str:
        return f"{PREFIX[kind]}5g{next(self._ids):010d}AAA"

    def add(self, sobject: str, **values: Any) -> str:
        with self.lock:
            record_id = self.new_id(sobject)
            self.records.setdefault(sobject, {})[record_id] = {"Id": record_id, "IsDeleted": False, **values}
            return record_id

    def add_account(self, name: str) -> str:
        return self.add("Account", Name=name)

    def add_user(self, email: str, *, active: bool = True) -> str:
        return self.add("User", Email=email, IsActive=active)

    def tasks(self) -> list[dict[str, Any]]:
        return [t for t in self.records.get("Task", {}).values() if not t["IsDeleted"]]

    def close_task(self, task_id: str) -> None:
        with self.lock:
            self.records["Task"][task_id].update(Status="Completed", IsClosed=True)

    def delete(self, sobject: str, record_id: str, *, purge: bool = False) -> None:
        """To the recycle bin (queryAll still sees it, IsDeleted) or, with `purge`, gone."""
        with self.lock:
            if purge:
                del self.records[sobject][record_id]
            else:
                self.records[sobject][record_id]["IsDeleted"] = True

    def fail(self, kind: str, match: str = "", *, skip: int = 0, times: int | None = 1, **options: Any) -> Fault:
        fault = Fault(kind, match, skip, times, **options)
        with self.lock:
            self.faults.append(fault)
        return fault

    def fields(self, sobject: str) -> dict[str, dict[str, Any]]:
        """describe's fields: the standard ones, then the custom ones."""
        described = {
            name: {"name": name, "type": kind, "custom": False, "externalId": False, "unique": name == "Id"}
            for name, kind in STANDARD_FIELDS.get(sobject, [])
        }
        described.update(self.custom_fields.get(sobject, {}))
        return described

    def granted(self) -> set[str]:
        """The fields ("Account.X__c") a permission set assigned to the run-as user lets it edit."""
        assigned = {
            a["PermissionSetId"]
            for a in self.records.get("PermissionSetAssignment", {}).values()
            if a["AssigneeId"] == INTEGRATION_USER
        }
        grants = self.records.get("FieldPermissions", {}).values()
        return {g["Field"] for g in grants if g["ParentId"] in assigned and g.get("PermissionsEdit")}

    def visible(self, sobject: str) -> dict[str, dict[str, Any]]:
        """What describe shows the run-as user: with `fls_enforced`, custom fields only when granted."""
        granted = self.granted() if self.fls_enforced else set()
        return {
            n: f
            for n, f in self.fields(sobject).items()
            if not (self.fls_enforced and f["custom"]) or f"{sobject}.{n}" in granted
        }

    def count(self, request_line: str) -> int:
        return sum(1 for r in self.requests if r == request_line)


class _Problem(Exception):
    def __init__(self, status: int, message: str, code: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.payload = status, [{"message": message, "errorCode": code, "fields": fields or []}]


def _record_error(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"success": False, "errors": [{"statusCode": code, "message": message, "fields": fields or []}]}


_CONDITION = re.compile(
    r"(\w+)\s*(=|IN)\s*(\((?:\s*'(?:[^'\\]|\\.)*'\s*,?)*\)|'(?:[^'\\]|\\.)*'|true|false)", re.IGNORECASE
)
_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'")
_SOQL = re.compile(
    r"SELECT\s+(.+?)\s+FROM\s+(\w+)(?:\s+WHERE\s+(.+?))?(?:\s+ORDER\s+BY\s+(\w+))?\s*$", re.IGNORECASE | re.DOTALL
)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _parse_where(where: str) -> list[tuple[str, set[Any]]]:
    """Each ANDed condition as (field, accepted values); text values lower-cased."""
    conditions, rest = [], where.strip()
    while rest:
        m = _CONDITION.match(rest)
        if not m:
            raise _Problem(400, f"unexpected token: '{rest[:40]}'", "MALFORMED_QUERY")
        name, _, raw = m.groups()
        if raw.lower() in ("true", "false"):
            values: set[Any] = {raw.lower() == "true"}
        else:
            values = {_unquote(v).lower() for v in _LITERAL.findall(raw)}
        conditions.append((name, values))
        rest = rest[m.end() :].strip()
        if rest:
            if not rest.upper().startswith("AND "):
                raise _Problem(400, f"unexpected token: '{rest[:40]}'", "MALFORMED_QUERY")
            rest = rest[4:].strip()
    return conditions


def _matches(record: dict[str, Any], conditions: list[tuple[str, set[Any]]]) -> bool:
    for name, values in conditions:
        have = record.get(name)
        if isinstance(have, str):
            have = have.lower()
        if name == "Id" and isinstance(have, str):  # 15- and 18-character ids both match
            if not any(have[:15] == str(v)[:15] for v in values):
                return False
        elif have not in values:
            return False
    return True


class _Handler(StandinHandler):
    server: _Server

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        state = self.server.state
        raw = self.read_body()
        parts = urlsplit(self.path)
        line = f"{method} {parts.path}"
        with state.lock:
            state.requests.append(line)
            fault = next((f for f in state.faults if f.applies(line)), None)
        if state.delay:
            state.stop.wait(state.delay)
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            return
        if fault is not None and fault.kind == "expire":
            with state.lock:
                state.tokens.clear()
        elif fault is not None and fault.kind != "drop-after":
            return self._fault(fault)
        try:
            if parts.path == "/services/oauth2/token":
                status, payload = self._token(parse_qs(raw.decode()))
            else:
                self._authorise()
                status, payload = self._route(method, parts.path, parse_qs(parts.query), raw)
        except _Problem as problem:
            status, payload = problem.status, problem.payload
        if fault is not None and fault.kind == "drop-after":  # done, but the answer never arrives
            self.close_connection = True
            return
        self._answer(status, payload)

    def _fault(self, fault: Fault) -> None:
        if fault.kind in ("429", "503"):
            payload = [{"message": "Server is temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}]
            return self._answer(int(fault.kind), payload, {"Retry-After": fault.retry_after})
        if fault.kind == "limit":
            payload = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
            return self._answer(403, payload, {"Retry-After": fault.retry_after})
        self._answer(500, [{"message": "An unexpected error occurred.", "errorCode": "UNKNOWN_EXCEPTION"}])

    def _authorise(self) -> None:
        presented = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if presented not in self.server.state.tokens:
            raise _Problem(401, "Session expired or invalid", "INVALID_SESSION_ID")

    def _token(self, form: dict[str, list[str]]) -> tuple[int, Any]:
        state = self.server.state
        got = {k: (v or [""])[0] for k, v in form.items()}
        if got.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
        if got.get("client_id") != state.client_id or got.get("client_secret") != state.client_secret:
            described = "invalid client credentials"
            if state.echo_secret_in_errors:
                described += f" (client_secret={got.get('client_secret')})"
            return 400, {"error": "invalid_client", "error_description": described}
        token = f"{ORG_ID}!AR8AQ{secrets.token_urlsafe(48)}"
        with state.lock:
            state.tokens.add(token)
        port = self.server.server_address[1]
        return 200, {
            "access_token": token,
            "signature": secrets.token_urlsafe(32),
            "scope": "api",
            "instance_url": f"http://127.0.0.1:{port}",
            "id": f"https://login.salesforce.com/id/{ORG_ID}/{INTEGRATION_USER}",
            "token_type": "Bearer",
            "issued_at": "1796515200000",
        }

    def _route(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> tuple[int, Any]:
        m = DATA.fullmatch(path)
        if not m:
            raise _Problem(404, "The requested resource does not exist", "NOT_FOUND")
        version, rest = m.groups()
        body = json.loads(raw) if raw and self.headers.get("Content-Type", "").startswith("application/json") else None
        if method == "GET" and (d := re.fullmatch(r"/sobjects/(\w+)/describe", rest)):
            fields = self.server.state.visible(d.group(1))
            return 200, {"name": d.group(1), "fields": [{"updateable": True, **f} for f in fields.values()]}
        if method == "GET" and (q := re.fullmatch(r"/(query|queryAll)(?:/([\w-]+))?", rest)):
            return 200, self._query(version, q.group(1), q.group(2), (query.get("q") or [""])[0])
        if method == "POST" and rest == "/tooling/sobjects/CustomField":
            return self._create_field(body or {})
        if method == "PATCH" and rest == "/composite/sobjects":
            return 200, self._update(body or {})
        if method == "POST" and rest == "/composite/sobjects":
            return 200, self._create_records(body or {})
        if method == "POST" and (c := re.fullmatch(r"/sobjects/(\w+)", rest)):
            result = self._create_records({"records": [{"attributes": {"type": c.group(1)}, **(body or {})}]})[0]
            if not result["success"]:
                raise _Problem(400, result["errors"][0]["message"], result["errors"][0]["statusCode"])
            return 201, result
        if method == "PATCH" and (u := re.fullmatch(r"/composite/sobjects/(\w+)/(\w+)", rest)):
            return 200, self._upsert(u.group(1), u.group(2), body or {})
        if rest.startswith("/jobs/ingest"):
            return self.server.bulk(method, version, rest, body, raw)
        raise _Problem(404, f"The requested resource does not exist: {method} {rest}", "NOT_FOUND")

    def _query(self, version: str, resource: str, cursor: str | None, soql: str) -> dict[str, Any]:
        state = self.server.state
        with state.lock:
            if cursor:
                locator, _, offset = cursor.rpartition("-")
                records, start = state.cursors.get(locator, []), int(offset)
            else:
                records, start = self._select(version, soql, include_deleted=resource == "queryAll"), 0
                locator = f"01g5g{len(state.cursors):010d}"
                state.cursors[locator] = records
        page = records[start : start + state.query_page]
        answer: dict[str, Any] = {"totalSize": len(records), "done": start + len(page) >= len(records), "records": page}
        if not answer["done"]:
            answer["nextRecordsUrl"] = f"/services/data/{version}/{resource}/{locator}-{start + len(page)}"
        return answer

    def _select(self, version: str, soql: str, *, include_deleted: bool) -> list[dict[str, Any]]:
        m = _SOQL.match(soql.strip())
        if not m:
            raise _Problem(400, "unexpected token", "MALFORMED_QUERY")
        names = [n.strip() for n in m.group(1).split(",")]
        sobject, where, order = m.group(2), m.group(3), m.group(4)
        known = self.server.state.fields(sobject)
        for name in names + ([order] if order else []):
            if name not in known:
                raise _Problem(400, f"No such column '{name}' on entity '{sobject}'", "INVALID_FIELD")
        conditions = _parse_where(where) if where else []
        rows = [
            r
            for r in self.server.state.records.get(sobject, {}).values()
            if (include_deleted or not r["IsDeleted"]) and _matches(r, conditions)
        ]
        if order:
            rows.sort(key=lambda r: str(r.get(order)))
        url = f"/services/data/{version}/sobjects/{sobject}/"
        return [{"attributes": {"type": sobject, "url": url + r["Id"]}, **{n: r.get(n) for n in names}} for r in rows]

    def _create_field(self, body: dict[str, Any]) -> tuple[int, Any]:
        state = self.server.state
        full_name, metadata = str(body.get("FullName") or ""), body.get("Metadata") or {}
        owner, _, name = full_name.partition(".")
        if not name.endswith("__c") or metadata.get("type") not in DESCRIBE_TYPE:
            raise _Problem(
                400, f"Cannot create {full_name}: FullName or Metadata.type invalid", "FIELD_INTEGRITY_EXCEPTION"
            )
        if metadata["type"] == "Picklist" and not metadata.get("valueSet"):
            raise _Problem(400, "Picklist must have a valueSet", "FIELD_INTEGRITY_EXCEPTION", ["valueSet"])
        targets = ["Task"] if owner == "Activity" else [owner]
        values = ((metadata.get("valueSet") or {}).get("valueSetDefinition") or {}).get("value") or []
        with state.lock:
            if any(name in state.custom_fields.get(t, {}) for t in targets):
                raise _Problem(400, f"Duplicate developer name: {name}", "DUPLICATE_DEVELOPER_NAME")
            for target in targets:
                state.custom_fields.setdefault(target, {})[name] = {
                    "name": name,
                    "label": metadata.get("label"),
                    "type": DESCRIBE_TYPE[metadata["type"]],
                    "custom": True,
                    "externalId": bool(metadata.get("externalId")),
                    "unique": bool(metadata.get("unique")),
                    "length": metadata.get("length", 0),
                    "picklistValues": [
                        {"value": v["fullName"], "label": v.get("label"), "active": True} for v in values
                    ],
                }
            field_id = state.new_id("CustomField")
        return 201, {"id": field_id, "success": True, "errors": [], "warnings": [], "infos": []}

    def _check_values(self, sobject: str, record: dict[str, Any]) -> dict[str, Any] | None:
        """A record's per-record error for unknown fields or restricted picklist values, else None."""
        known = self.server.state.fields(sobject)
        for name, value in record.items():
            if name in ("attributes", "id"):
                continue
            if name not in known:
                return _record_error("INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}", [name])
            options = {p["value"] for p in known[name].get("picklistValues") or []}
            if options and value is not None and value not in options:
                return _record_error(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"bad value for restricted picklist field: {value}",
                    [name],
                )
        return None

    def _update(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        records = body.get("records") or []
        if len(records) > MAX_COLLECTION:
            raise _Problem(400, "Maximum number of records in a collection is 200", "EXCEEDED_ID_LIMIT", ["records"])
        results = []
        with self.server.state.lock:
            for record in records:
                sobject = (record.get("attributes") or {}).get("type", "")
                result = self._check_values(sobject, record) or self.server.apply_update(
                    sobject, str(record.get("id") or ""), record
                )
                results.append(result or {"id": record["id"], "success": True, "errors": []})
        return results

    def _create_records(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Create each record (setup's permission set, its field permissions and its assignment)."""
        state = self.server.state
        results = []
        with state.lock:
            for record in body.get("records") or []:
                sobject = (record.get("attributes") or {}).get("type", "")
                values = {k: v for k, v in record.items() if k != "attributes"}
                if error := self._check_values(sobject, values):
                    results.append(error)
                    continue
                same = [
                    r
                    for r in state.records.get(sobject, {}).values()
                    if (
                        sobject == "FieldPermissions"
                        and (r["ParentId"], r["Field"]) == (values["ParentId"], values["Field"])
                    )
                    or (sobject == "PermissionSet" and r["Name"] == values.get("Name"))
                ]
                if same:
                    results.append(_record_error("DUPLICATE_VALUE", f"duplicate value found: {same[0]['Id']}"))
                    continue
                results.append({"id": state.add(sobject, **values), "success": True, "errors": []})
        return results

    def _upsert(self, sobject: str, external: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        state = self.server.state
        records = body.get("records") or []
        if len(records) > MAX_COLLECTION:
            raise _Problem(400, "Maximum number of records in a collection is 200", "EXCEEDED_ID_LIMIT", ["records"])
        if not state.fields(sobject).get(external, {}).get("externalId"):
            raise _Problem(400, f"Field {external} is not an External ID field of {sobject}", "INVALID_FIELD")
        results = []
        with state.lock:
            for record in records:
                results.append(self._upsert_one(sobject, external, record))
        return results

    def _upsert_one(self, sobject: str, external: str, record: dict[str, Any]) -> dict[str, Any]:
        state = self.server.state
        if error := self._check_values(sobject, record):
            return error
        accounts, users = state.records.get("Account", {}), state.records.get("User", {})
        what, owner = record.get("WhatId"), record.get("OwnerId")
        if what is not None and (what not in accounts or accounts[what]["IsDeleted"]):
            return _record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["WhatId"])
        if owner is not None and owner not in users:
            return _record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["OwnerId"])
        if owner is not None and not users[owner]["IsActive"]:
            return _record_error("INACTIVE_OWNER_OR_USER", "operation performed with inactive user", ["OwnerId"])
        key = record.get(external)
        values = {k: v for k, v in record.items() if k != "attributes"}
        live = state.records.setdefault(sobject, {})
        match = [r for r in live.values() if not r["IsDeleted"] and r.get(external) == key]
        if match:
            match[0].update(values)
            return {"id": match[0]["Id"], "success": True, "errors": [], "created": False}
        record_id = state.add(sobject, **values)
        if sobject == "Task":
            live[record_id]["IsClosed"] = values.get("Status") == "Completed"
        return {"id": record_id, "success": True, "errors": [], "created": True}

    def _answer(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(payload, tuple):  # (content type, text): Bulk API results
            content_type, text = payload
            data = text.encode()
        else:
            content_type = "application/json;charset=UTF-8"
            data = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        self.send_body(status, data, content_type, headers)


class _Server(StandinServer):
    state: StandinState

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a hanging answer is expected, not news

    def apply_update(self, sobject: str, record_id: str, values: dict[str, Any]) -> dict[str, Any] | None:
        """Update one record (the caller holds the lock); a per-record error, or None when applied."""
        if not re.fullmatch(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?", record_id) or not record_id.startswith(
            PREFIX.get(sobject, "?")
        ):
            return _record_error("MALFORMED_ID", f"{sobject} ID: id value of incorrect type: {record_id}", ["Id"])
        records = self.state.records.get(sobject, {})
        found = records.get(record_id) or next((r for i, r in records.items() if i[:15] == record_id[:15]), None)
        if found is None:
            return _record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        if found["IsDeleted"]:
            return _record_error("ENTITY_IS_DELETED", "entity is deleted", [])
        found.update({k: v for k, v in values.items() if k not in ("attributes", "id", "Id")})
        return None

    def bulk(self, method: str, version: str, rest: str, body: Any, raw: bytes) -> tuple[int, Any]:
        """Bulk API 2.0 ingest jobs (update only)."""
        state = self.state
        parts = rest.strip("/").split("/")[2:]  # after jobs/ingest
        with state.lock:
            if method == "POST" and not parts:
                if (body or {}).get("operation") != "update" or (body or {}).get("contentType", "CSV") != "CSV":
                    raise _Problem(400, "only CSV update jobs in this stand-in", "INVALIDJOB")
                created = Job(state.new_id("Job"), body["object"], "update")
                state.jobs[created.id] = created
                return 200, self._info(created, version)
            job = state.jobs.get(parts[0]) if parts else None
            if job is None:
                raise _Problem(404, "The requested resource does not exist", "NOT_FOUND")
            if method == "PUT" and parts[1:] == ["batches"]:
                if job.state != "Open" or job.data is not None:
                    raise _Problem(400, "Found multiple uploads or the job is not Open", "INVALIDJOBSTATE")
                job.data = raw.decode()
                return 201, None
            if method == "PATCH" and len(parts) == 1:
                if (body or {}).get("state") != "UploadComplete" or job.data is None or job.state != "Open":
                    raise _Problem(400, "No data was uploaded or the state is not UploadComplete", "INVALIDJOBSTATE")
                job.state = "UploadComplete"
                self._process(job)
                return 200, self._info(job, version)
            if method == "GET" and len(parts) == 1:
                if job.state == "UploadComplete":
                    job.polls += 1
                    if job.polls > state.job_polls_in_progress:
                        job.state = "JobComplete"
                return 200, self._info(job, version)
            if method == "GET" and parts[1:] in (["successfulResults"], ["failedResults"]):
                ok = parts[1] == "successfulResults"
                rows = job.successful if ok else job.failed
                header = ["sf__Id", "sf__Created" if ok else "sf__Error", *job.header]
                out = io.StringIO()
                writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
                writer.writeheader()
                writer.writerows(rows)
                return 200, ("text/csv", out.getvalue())
        raise _Problem(404, f"The requested resource does not exist: {method} {rest}", "NOT_FOUND")

    def _process(self, job: Job) -> None:
        reader = csv.DictReader(io.StringIO(job.data or ""))
        job.header = list(reader.fieldnames or [])
        known = self.state.fields(job.object)
        for row in reader:
            values: dict[str, Any] = {k: (None if v == "#N/A" else v) for k, v in row.items() if v != "" and k != "Id"}
            unknown = [k for k in values if k not in known]
            error = (
                _record_error("INVALID_FIELD", f"No such column '{unknown[0]}'", unknown)
                if unknown
                else self.apply_update(job.object, row.get("Id", ""), values)
            )
            if error is None:
                job.successful.append({"sf__Id": row["Id"], "sf__Created": "false", **row})
            else:
                e = error["errors"][0]
                job.failed.append(
                    {"sf__Id": row.get("Id", ""), "sf__Error": f"{e['statusCode']}:{e['message']}:--", **row}
                )

    @staticmethod
    def _info(job: Job, version: str) -> dict[str, Any]:
        return {
            "id": job.id,
            "operation": job.operation,
            "object": job.object,
            "createdById": INTEGRATION_USER,
            "state": job.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(version[1:]),
            "contentUrl": f"services/data/{version}/jobs/ingest/{job.id}/batches",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
            "numberRecordsProcessed": len(job.successful) + len(job.failed),
            "numberRecordsFailed": len(job.failed),
        }


class SalesforceStandin(ServedInThread):
    """Start with ``with SalesforceStandin() as org:``; ``org.url`` is the login (and instance) URL, ``org.state``
    the org."""

    def __init__(self, port: int = 0, state: StandinState | None = None) -> None:
        self.state = state or StandinState()
        super().__init__(_Server(port, _Handler, self.state), "salesforce-standin", stop=self.state.stop)


@pytest.fixture
def salesforce_standin() -> Iterator[SalesforceStandin]:
    """An empty org for one test (import this fixture into a conftest)."""
    with SalesforceStandin() as standin:
        yield standin


def seed_accounts(state: StandinState, count: int) -> list[str]:
    """`count` accounts (for the benchmark); their ids in order."""
    return [state.add_account(f"株式会社ベンチ{n:06d}") for n in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--accounts", type=int, default=0, help="seed this many accounts (for the benchmark)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every answer takes (0.1 = 100 ms)")
    args = parser.parse_args()
    state = StandinState(delay=args.delay)
    state.query_page = 2000
    seed_accounts(state, args.accounts)
    with SalesforceStandin(args.port, state) as standin:
        print(standin.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
