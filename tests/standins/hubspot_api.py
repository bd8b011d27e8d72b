"""A HubSpot CRM API stand-in on 127.0.0.1: stateful records, HubSpot's paging, its limits and its faults.

Speaks the endpoints kizuna's HubSpot connector calls, as the official client sends them:

- POST /crm/v3/objects/{type}/search   filterGroups (OR of ANDed filters: EQ NEQ GT GTE LT LTE IN NOT_IN
  HAS_PROPERTY NOT_HAS_PROPERTY), one sort, properties, limit (<= 200) and an offset `after`; a query answers
  400 when `after + limit` passes the search window (10,000, like HubSpot; lower it to test windowing).
- GET  /crm/v3/objects/{type}?limit&after&properties&archived=true|false   (list; archived records carry
  archivedAt; merged-away records are in neither list, as in HubSpot)
- POST /crm/v3/objects/{type}/batch/read   (207 with errors for ids not found)
- GET  /crm/v3/owners/?limit&after&archived
- POST /crm/v4/associations/{from}/{to}/batch/read   (207 with errors for ids without associations)
- GET  /crm/v3/pipelines/{type}
- the write endpoints of kizuna's CRM write-back: batch update and create, properties and property groups
  (tests/standins/hubspot_writes.py)

Answers carry the fields of HubSpot's public CRM spec (HubSpot-public-api-spec-collection): records as
SimplePublicObject (with `url`), batch answers with `status`, `requestedAt`, `startedAt`, `completedAt`,
`links` and StandardError entries, v4 associations with `toObjectId` as a string, owners with `teams`,
pipelines and stages with their dates, errors with a `correlationId`.

Every request needs ``Authorization: Bearer <token>`` (401 otherwise). Non-search answers carry HubSpot's
X-HubSpot-RateLimit-* headers. Faults are injected with `StandinState.fail` ("429" with Retry-After, "429-limits"
with only the rate-limit headers, "429-daily", "500", "502", "503", "drop" = close the connection unanswered,
"hang" = answer nothing until the client times out,
"drop-after" = do what was asked, then close the connection unanswered (a lost answer), "spent" = answer but say the burst allowance is spent, "call" = run a function first, e.g. edit a record
while the connector pages). `seed_from_demo` loads a `kizuna demo-data` directory.
Run as a script (``python -m tests.standins.hubspot_api --contacts 100000``) for the benchmark.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import csv
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from tests.standins.serving import ServedInThread, StandinHandler, StandinServer

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"  # shaped like a real private app token
START = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT_WINDOW = 10_000
MAX_SEARCH_LIMIT = 200
MAX_LIST_LIMIT = 100
DATE_PROPERTIES = frozenset(
    {"createdate", "lastmodifieddate", "hs_lastmodifieddate", "hs_timestamp", "closedate", "archivedAt"}
)
# HubSpot-defined association type ids to companies (primary where HubSpot has one).
COMPANY_ASSOCIATION_TYPE = {
    "contacts": 1,
    "deals": 5,
    "tickets": 26,
    "calls": 182,
    "emails": 186,
    "meetings": 188,
    "notes": 190,
}
PRIMARY_TYPE_IDS = frozenset({1, 5, 26})
PORTAL_ID = 2_603_147
DEFAULT_GROUPS = frozenset({"companyinformation", "task_information"})  # HubSpot's own property groups
# HubSpot's object type ids, as records' `url` and association types name them
OBJECT_TYPE_IDS = {
    "contacts": "0-1",
    "companies": "0-2",
    "deals": "0-3",
    "tickets": "0-5",
    "notes": "0-46",
    "meetings": "0-47",
    "calls": "0-48",
    "emails": "0-49",
}
DEAL_STAGES = (  # the default pipeline: id, label, isClosed, probability
    ("appointmentscheduled", "Appointment scheduled", False, 0.2),
    ("qualifiedtobuy", "Qualified to buy", False, 0.4),
    ("presentationscheduled", "Presentation scheduled", False, 0.6),
    ("decisionmakerboughtin", "Decision maker bought-In", False, 0.8),
    ("contractsent", "Contract sent", False, 0.9),
    ("closedwon", "Closed won", True, 1.0),
    ("closedlost", "Closed lost", True, 0.0),
)
RATE_LIMIT_HEADERS = {
    "X-HubSpot-RateLimit-Daily": "1000000",
    "X-HubSpot-RateLimit-Daily-Remaining": "999000",
    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
    "X-HubSpot-RateLimit-Max": "190",
    "X-HubSpot-RateLimit-Remaining": "189",
    "X-HubSpot-RateLimit-Secondly": "19",
    "X-HubSpot-RateLimit-Secondly-Remaining": "18",
}


def modified_property(object_type: str) -> str:
    return "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"


def user_id(owner_id: str | int) -> int:
    """The user id of an owner: the stand-in's users and owners are one to one."""
    return int(owner_id) + 7_000_000


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def millis(value: str) -> int | None:
    if value.isdigit():
        return int(value)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return round((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)


@dataclass
class Obj:
    id: str
    type: str
    properties: dict[str, str | None]
    created_ms: int
    modified_ms: int
    archived_ms: int | None = None
    merged_ids: list[str] = field(default_factory=list)


@dataclass
class Fault:
    """Fail matching requests: let `skip` through, then fail `times` of them (None: all that follow)."""

    kind: str
    match: str = ""  # a substring of "METHOD /path" (no query)
    skip: int = 0
    times: int | None = 1
    retry_after: str = "1"
    interval_ms: int = 200
    hang_seconds: float = 5.0
    action: Callable[[StandinState], None] | None = None  # kind "call": run this, then answer normally
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
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int = 0
    at: float = 0.0
    ids: list[str] = field(default_factory=list)  # the record ids answered (searches, lists, batch reads)


@dataclass
class StandinState:
    """The stand-in's records, owners and faults; tests change them between (or during) runs."""

    token: str = TOKEN
    tick_ms: int = 1000  # the clock moves this much with every change
    window: int = DEFAULT_WINDOW
    echo_token_in_errors: bool = False  # a worst case: the 401 answer repeats the token it was sent
    record_requests: bool = True
    latency_seconds: float = 0.0  # every answer waits this long (the write-back benchmark)
    clock_ms: int = int(START.timestamp() * 1000)
    objects: dict[str, dict[str, Obj]] = field(default_factory=dict)
    associations: dict[tuple[str, str], dict[str, dict[str, set[int]]]] = field(default_factory=dict)
    owners: dict[str, dict[str, Any]] = field(default_factory=dict)
    properties: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)  # (type, kind)
    faults: list[Fault] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    stop: threading.Event = field(default_factory=threading.Event)  # set when the stand-in shuts down
    version: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(10_001))
    _cache: dict[tuple[Any, ...], Any] = field(default_factory=dict)  # orderings and lists of this version

    # -- changing the account ------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.clock_ms += int(seconds * 1000)

    def _tick(self) -> int:
        self.clock_ms += self.tick_ms
        self.version += 1
        self._cache.clear()
        return self.clock_ms

    def create(
        self,
        object_type: str,
        properties: dict[str, Any] | None = None,
        *,
        id: str | int | None = None,
        company: str | int | None = None,
        created_ms: int | None = None,
    ) -> str:
        """A new record (and its association to `company`, primary where HubSpot has one); its id."""
        with self.lock:
            now = self._tick()
            record_id = str(id if id is not None else next(self._ids))
            props = {k: (None if v is None else str(v)) for k, v in (properties or {}).items()}
            self.objects.setdefault(object_type, {})[record_id] = Obj(
                record_id, object_type, props, created_ms if created_ms is not None else now, now
            )
            if company is not None:
                self._link(object_type, record_id, str(company))
            return record_id

    def update(self, object_type: str, record_id: str | int, **properties: Any) -> None:
        with self.lock:
            obj = self.objects[object_type][str(record_id)]
            obj.properties.update({k: (None if v is None else str(v)) for k, v in properties.items()})
            obj.modified_ms = self._tick()

    def associate(self, object_type: str, record_id: str | int, company_id: str | int) -> None:
        """Make `company_id` the record's (primary) company. Like HubSpot, this modifies contacts (their
        associatedcompanyid changes) but not other records."""
        with self.lock:
            self._link(object_type, str(record_id), str(company_id))
            if object_type == "contacts":
                self.objects[object_type][str(record_id)].modified_ms = self._tick()
            else:
                self.version += 1
                self._cache.clear()

    def _link(self, object_type: str, record_id: str, company_id: str) -> None:
        links = self.associations.setdefault((object_type, record_id), {}).setdefault("companies", {})
        links.clear()
        links[company_id] = {COMPANY_ASSOCIATION_TYPE[object_type]}
        if object_type in ("deals", "tickets"):
            links[company_id].add(341 if object_type == "deals" else 339)  # plus the unlabeled type

    def archive(self, object_type: str, record_id: str | int) -> None:
        """Delete to the recycle bin: gone from search and the live list, listed with archived=true.
        Like HubSpot, archiving does not change the last-modified date."""
        with self.lock:
            obj = self.objects[object_type][str(record_id)]
            obj.archived_ms = self._tick()

    def merge(self, object_type: str, primary_id: str | int, merged_id: str | int) -> None:
        """Merge `merged_id` into `primary_id`: the merged record disappears (in no list), the primary lists it
        in hs_merged_object_ids, and the merged record's associations move to the primary."""
        with self.lock:
            primary = self.objects[object_type][str(primary_id)]
            merged = self.objects[object_type].pop(str(merged_id))
            primary.merged_ids += [merged.id, *merged.merged_ids]
            if object_type == "companies":
                for (from_type, from_id), links in self.associations.items():
                    targets = links.get("companies", {})
                    if merged.id in targets:
                        targets[primary.id] = targets.pop(merged.id)
                        if from_type == "contacts":  # their associatedcompanyid changed
                            self.objects["contacts"][from_id].modified_ms = self._tick()
            primary.modified_ms = self._tick()

    def add_owner(self, email: str, *, id: str | int | None = None, archived: bool = False) -> str:
        with self.lock:
            owner_id = str(id if id is not None else next(self._ids))
            first, _, last = email.split("@")[0].partition(".")
            self.owners[owner_id] = {
                "id": owner_id,
                "email": email,
                "type": "PERSON",
                "firstName": first,
                "lastName": last,
                "userId": None if archived else user_id(owner_id),  # as HubSpot: null for a deactivated user
                "userIdIncludingInactive": user_id(owner_id),
                "createdAt": iso(self.clock_ms),
                "updatedAt": iso(self.clock_ms),
                "archived": archived,
                "teams": [{"id": "4801", "name": "Inside Sales", "primary": True}],
            }
            return owner_id

    def user_of(self, email: str) -> int:
        """The HubSpot user id of the owner with this email (what hs_created_by_user_id holds)."""
        return next(user_id(o["id"]) for o in self.owners.values() if o["email"] == email)

    def fail(self, kind: str, match: str = "", *, skip: int = 0, times: int | None = 1, **options: Any) -> Fault:
        fault = Fault(kind, match, skip, times, **options)
        with self.lock:
            self.faults.append(fault)
        return fault

    # -- reading it as the API does ------------------------------------------------------------------------

    def live(self, object_type: str) -> list[Obj]:
        return [o for o in self.objects.get(object_type, {}).values() if o.archived_ms is None]

    def companies_of(self, object_type: str, record_id: str) -> dict[str, set[int]]:
        return self.associations.get((object_type, record_id), {}).get("companies", {})

    def view(self, obj: Obj, wanted: list[str] | None) -> dict[str, Any]:
        """A record as the API returns it, with the requested properties (null when unset)."""
        props = dict(obj.properties)
        props["hs_object_id"] = obj.id
        props.setdefault("createdate", iso(obj.created_ms))
        props[modified_property(obj.type)] = iso(obj.modified_ms)
        if obj.merged_ids:
            props["hs_merged_object_ids"] = ";".join(obj.merged_ids)
        if obj.type == "contacts":
            primary = [c for c, types in self.companies_of("contacts", obj.id).items() if types & PRIMARY_TYPE_IDS]
            props["associatedcompanyid"] = primary[0] if primary else None
        if obj.type == "deals":
            stage = {s[0]: s for s in DEAL_STAGES}.get(obj.properties.get("dealstage") or "")
            props["hs_is_closed"] = None if stage is None else str(stage[2]).lower()
            props["hs_is_closed_won"] = None if stage is None else str(stage[2] and stage[3] == 1.0).lower()
        defaults = {"hs_object_id", "createdate", modified_property(obj.type)}
        names = defaults | set(wanted or [])
        answer: dict[str, Any] = {  # SimplePublicObject of the CRM v3 spec, as a read answers it
            "id": obj.id,
            "properties": {n: props.get(n) for n in sorted(names)},
            "createdAt": iso(obj.created_ms),
            "updatedAt": iso(obj.modified_ms),
            "archived": obj.archived_ms is not None,
            "url": f"https://app.hubspot.com/contacts/{PORTAL_ID}/record/{OBJECT_TYPE_IDS.get(obj.type, obj.type)}/{obj.id}",
        }
        if obj.archived_ms is not None:
            answer["archivedAt"] = iso(obj.archived_ms)
        return answer

    def value(self, obj: Obj, prop: str) -> str | None:
        if prop == "hs_object_id":
            return obj.id
        if prop == modified_property(obj.type):
            return str(obj.modified_ms)
        if prop == "createdate" and "createdate" not in obj.properties:
            return str(obj.created_ms)
        if prop in ("associatedcompanyid", "hs_is_closed", "hs_is_closed_won", "hs_merged_object_ids"):
            return self.view(obj, [prop])["properties"].get(prop)
        return obj.properties.get(prop)

    def ordered(self, object_type: str, prop: str, descending: bool) -> tuple[list[Any], list[Obj]]:
        """Live records ordered by `prop` (records without it last), with the numeric sort keys for
        bisecting (empty when some key is not a number); kept until the next change."""
        key = ("ordered", object_type, prop, descending, self.version)
        cached = self._cache.get(key)
        if cached is None:
            keyed = [(_sort_value(self, o, prop), o) for o in self.live(object_type)]
            present = sorted((p for p in keyed if p[0] is not None), key=lambda p: p[0], reverse=descending)
            ordered = [o for _, o in present] + [o for v, o in keyed if v is None]
            numeric = all(isinstance(v, int | float) for v, _ in present)
            cached = ([v for v, _ in present] if numeric and not descending else [], ordered)
            if len(self._cache) > 32:
                self._cache.clear()
            self._cache[key] = cached
        return cached

    def searches(self, object_type: str) -> list[dict[str, Any]]:
        """The bodies of the search requests seen for one object type, in order."""
        path = f"/crm/v3/objects/{object_type}/search"
        return [r.body for r in self.requests if r.path == path]

    def request_lines(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]


def _comparable(prop: str, value: str | None) -> Any:
    if value is None:
        return None
    if prop in DATE_PROPERTIES or prop == "hs_object_id" or prop.endswith("date"):
        ms = millis(value)
        if ms is not None:
            return ms
    try:
        return float(value)
    except ValueError:
        return value


def _sort_value(state: StandinState, obj: Obj, prop: str) -> Any:
    if prop == modified_property(obj.type):
        return obj.modified_ms
    if prop == "hs_object_id":
        return int(obj.id) if obj.id.isdigit() else obj.id
    return _comparable(prop, state.value(obj, prop))


def _matches(state: StandinState, obj: Obj, flt: dict[str, Any]) -> bool:
    prop, op = flt.get("propertyName", ""), flt.get("operator", "EQ")
    have = _sort_value(state, obj, prop)
    if op == "HAS_PROPERTY":
        return have not in (None, "")
    if op == "NOT_HAS_PROPERTY":
        return have in (None, "")
    if op in ("IN", "NOT_IN"):
        values = {_comparable(prop, str(v)) for v in flt.get("values") or []}
        return (have in values) == (op == "IN")
    want = _comparable(prop, str(flt.get("value")))
    if have is None:
        return op == "NEQ"
    try:
        return {
            "EQ": have == want,
            "NEQ": have != want,
            "GT": have > want,
            "GTE": have >= want,
            "LT": have < want,
            "LTE": have <= want,
        }[op]
    except TypeError:  # a number against text: HubSpot would not match either
        return False


class _Problem(Exception):
    def __init__(self, status: int, message: str, category: str = "VALIDATION_ERROR") -> None:
        super().__init__(message)
        self.status, self.message, self.category = status, message, category


class _Handler(StandinHandler):
    server: _Server

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        state = self.server.state
        raw = self.read_body()
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        seen = Seen(method, path, query, body, at=time.monotonic())
        if state.record_requests:
            with state.lock:
                state.requests.append(seen)
        presented = self.headers.get("Authorization") or ""
        if presented != f"Bearer {state.token}":
            message = "Authentication credentials not found. This API supports OAuth 2.0 authentication."
            if state.echo_token_in_errors:
                message += f" Received: {presented}"
            return self._answer(
                seen, 401, {"status": "error", "message": message, "category": "INVALID_AUTHENTICATION"}
            )
        with state.lock:
            fault = next((f for f in state.faults if f.applies(f"{method} {path}")), None)
        headers = dict(RATE_LIMIT_HEADERS) if not path.endswith("/search") else {}
        if fault is not None and fault.kind == "call" and fault.action is not None:
            fault.action(state)  # e.g. someone edits a record while the connector pages
            fault = None
        if state.latency_seconds:
            state.stop.wait(state.latency_seconds)
        if fault is not None and fault.kind == "drop-after":
            with contextlib.suppress(_Problem):
                self._route(method, path, query, body)
            seen.status = -1
            self.close_connection = True
            return
        if fault is not None:
            if fault.kind in ("drop", "hang"):
                if fault.kind == "hang":  # answer nothing until the client gives up (at most hang_seconds)
                    state.stop.wait(fault.hang_seconds)
                seen.status = -1
                self.close_connection = True
                return
            if fault.kind.startswith("429"):
                limited = {**RATE_LIMIT_HEADERS, "X-HubSpot-RateLimit-Remaining": "0"}
                limited["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(fault.interval_ms)
                if fault.kind == "429":
                    limited["Retry-After"] = fault.retry_after
                if fault.kind == "429-daily":
                    limited["X-HubSpot-RateLimit-Daily-Remaining"] = "0"
                message = "You have reached your ten_secondly_rolling limit."
                payload = {
                    "status": "error",
                    "message": message,
                    "errorType": "RATE_LIMIT",
                    "policyName": "TEN_SECONDLY_ROLLING",
                }
                return self._answer(seen, 429, payload, limited)
            if fault.kind in ("500", "502", "503"):
                payload = {"status": "error", "message": "internal error", "category": "INTERNAL_ERROR"}
                return self._answer(seen, int(fault.kind), payload)
            if fault.kind == "spent":
                headers.update(
                    {
                        "X-HubSpot-RateLimit-Remaining": "0",
                        "X-HubSpot-RateLimit-Interval-Milliseconds": str(fault.interval_ms),
                    }
                )
        try:
            status, payload = self._route(method, path, query, body)
        except _Problem as problem:
            payload = {"status": "error", "message": problem.message, "category": problem.category}
            return self._answer(seen, problem.status, payload, headers)
        self._answer(seen, status, payload, headers)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        from tests.standins import hubspot_writes  # (it imports this module)

        state = self.server.state
        written = hubspot_writes.route(self, state, method, path, body)
        if written is not None:
            return written
        if m := re.fullmatch(r"/crm/v3/objects/([a-z_]+)/search", path):
            return 200, self._search(m.group(1), body if isinstance(body, dict) else {})
        if m := re.fullmatch(r"/crm/v3/objects/([a-z_]+)/batch/read", path):
            return self._batch_read(m.group(1), body if isinstance(body, dict) else {})
        if m := re.fullmatch(r"/crm/v3/objects/([a-z_]+)/?", path):
            return 200, self._list(m.group(1), query)
        if re.fullmatch(r"/crm/v3/owners/?", path):
            archived = (query.get("archived") or ["false"])[0].lower() == "true"  # the client sends True
            owners = [o for o in state.owners.values() if o["archived"] == archived]
            return 200, self._page(owners, query)
        if m := re.fullmatch(r"/crm/v4/associations/([a-z_]+)/([a-z_]+)/batch/read", path):
            return self._associations(m.group(1), m.group(2), body if isinstance(body, dict) else {})
        if re.fullmatch(r"/crm/v3/pipelines/deals/?", path):
            stages = [
                {
                    "id": sid,
                    "label": label,
                    "displayOrder": n,
                    "metadata": {"isClosed": str(closed).lower(), "probability": str(p)},
                    "archived": False,
                    "createdAt": iso(int(START.timestamp() * 1000)),
                    "updatedAt": iso(int(START.timestamp() * 1000)),
                    "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                }
                for n, (sid, label, closed, p) in enumerate(DEAL_STAGES)
            ]
            pipeline = {"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "stages": stages}
            pipeline.update(archived=False, createdAt=stages[0]["createdAt"], updatedAt=stages[0]["updatedAt"])
            return 200, {"results": [pipeline]}
        raise _Problem(404, f"no route {method} {path}", "OBJECT_NOT_FOUND")

    def _search(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        state = self.server.state
        limit = int(body.get("limit") or 10)
        after = int(body.get("after") or 0)
        if limit > MAX_SEARCH_LIMIT:
            raise _Problem(400, f"limit must be at most {MAX_SEARCH_LIMIT}")
        if after + limit > state.window:
            raise _Problem(400, f"paging past {state.window} results is not supported; narrow the search")
        groups = body.get("filterGroups") or []
        sort = (body.get("sorts") or [{"propertyName": "hs_object_id"}])[0]
        sort = sort if isinstance(sort, dict) else {"propertyName": str(sort)}
        prop = sort.get("propertyName", "")
        descending = str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING"
        with state.lock:
            keys, ordered = state.ordered(object_type, prop, descending)
            start = 0
            if len(groups) == 1 and not descending:  # a lower bound on the sort property: start there
                for f in groups[0].get("filters") or []:
                    bound = _comparable(prop, str(f.get("value"))) if f.get("propertyName") == prop else None
                    if isinstance(bound, int | float) and f.get("operator") in ("GT", "GTE", "EQ"):
                        cut = bisect.bisect_right if f["operator"] == "GT" else bisect.bisect_left
                        start = max(start, cut(keys, bound))
            wanted = after + limit + 1  # one more than the page says whether another page follows
            found: list[Obj] = []
            for position in range(start, len(ordered)):  # (islice would walk the skipped part)
                obj = ordered[position]
                if not groups or any(all(_matches(state, obj, f) for f in g.get("filters") or []) for g in groups):
                    found.append(obj)
                    if len(found) == wanted:
                        break
            results = [state.view(o, body.get("properties")) for o in found[after : after + limit]]
        # total: HubSpot counts every match; the stand-in stops counting after the next page's first record.
        answer: dict[str, Any] = {"total": len(found), "results": results}
        if len(found) > after + limit:
            answer["paging"] = {"next": {"after": str(after + limit), "link": f"?after={after + limit}"}}
        return answer

    def _list(self, object_type: str, query: dict[str, list[str]]) -> dict[str, Any]:
        state = self.server.state
        archived = (query.get("archived") or ["false"])[0].lower() == "true"  # the client sends True
        wanted = [p for v in query.get("properties") or [] for p in v.split(",") if p]
        with state.lock:
            key = ("list", object_type, archived, state.version)
            records = state._cache.get(key)
            if records is None:
                records = [
                    o for o in state.objects.get(object_type, {}).values() if (o.archived_ms is not None) == archived
                ]
                records.sort(key=lambda o: int(o.id) if o.id.isdigit() else 0)
                state._cache[key] = records
            answer = self._page(records, query, MAX_LIST_LIMIT)
            answer["results"] = [state.view(o, wanted) for o in answer["results"]]
        return answer

    @staticmethod
    def _page(items: list[Any], query: dict[str, list[str]], cap: int = 500) -> dict[str, Any]:
        limit = min(int((query.get("limit") or ["10"])[0]), cap)
        after = int((query.get("after") or ["0"])[0])
        answer: dict[str, Any] = {"results": items[after : after + limit]}
        if after + limit < len(items):
            answer["paging"] = {"next": {"after": str(after + limit), "link": f"?after={after + limit}"}}
        return answer

    def _batch_read(self, object_type: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        state = self.server.state
        ids = [str(i.get("id")) for i in body.get("inputs") or []]
        if len(ids) > 100:
            raise _Problem(400, "at most 100 inputs")
        with state.lock:
            found = [o for i in ids if (o := state.objects.get(object_type, {}).get(i)) and o.archived_ms is None]
            results = [state.view(o, body.get("properties")) for o in found]
        missing = sorted(set(ids) - {o.id for o in found})
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results, **self._batch_times()}
        if missing:
            answer["numErrors"] = 1
            answer["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some records",
                    "context": {"ids": missing},
                    "errors": [],
                    "links": {},
                }
            ]
        return (207 if missing else 200), answer

    def _associations(self, from_type: str, to_type: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        state = self.server.state
        ids = [str(i.get("id")) for i in body.get("inputs") or []]
        if len(ids) > 1000:
            raise _Problem(400, "at most 1000 inputs")
        results, missing = [], []
        with state.lock:
            for record_id in ids:
                links = state.associations.get((from_type, record_id), {}).get(to_type, {})
                live = {
                    c: t
                    for c, t in links.items()
                    if (o := state.objects.get(to_type, {}).get(c)) and o.archived_ms is None
                }
                if not live:
                    missing.append(record_id)
                    continue
                to = [
                    {
                        "toObjectId": c,  # a string in HubSpot's v4 spec
                        "associationTypes": [
                            {
                                "category": "HUBSPOT_DEFINED",
                                "typeId": t,
                                "label": "Primary" if t in PRIMARY_TYPE_IDS else None,
                                "fromObjectTypeId": OBJECT_TYPE_IDS.get(from_type, from_type),
                                "toObjectTypeId": OBJECT_TYPE_IDS.get(to_type, to_type),
                            }
                            for t in sorted(types)
                        ],
                    }
                    for c, types in sorted(live.items())
                ]
                results.append({"from": {"id": record_id}, "to": to})
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results, **self._batch_times()}
        if missing:
            answer["numErrors"] = len(missing)
            answer["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": f"No {to_type} is associated to {from_type} {i}.",
                    "context": {"fromObjectId": [i]},
                    "errors": [],
                    "links": {},
                }
                for i in missing
            ]
        return (207 if missing else 200), answer

    def _batch_times(self) -> dict[str, Any]:
        """A batch answer's timestamps and links, as HubSpot's BatchResponse schemas carry them."""
        now = iso(self.server.state.clock_ms)
        return {"requestedAt": now, "startedAt": now, "completedAt": now, "links": {}}

    def _answer(self, seen: Seen, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        seen.status = status
        if status >= 400 and isinstance(payload, dict):  # HubSpot's Error schema: every error has one
            payload.setdefault("correlationId", f"3d5f1a2e-0000-4000-8000-{len(self.server.state.requests):012d}")
        if isinstance(payload, dict) and isinstance(payload.get("results"), list):
            seen.ids = [str(r.get("id") or (r.get("from") or {}).get("id")) for r in payload["results"]]
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_body(status, data, "application/json;charset=utf-8", headers)


class _Server(StandinServer):
    state: StandinState

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a hanging answer is expected, not news


class HubSpotStandin(ServedInThread):
    """Start with ``with HubSpotStandin() as hubspot:``; ``hubspot.url`` is the base URL, ``hubspot.state`` the
    account."""

    def __init__(self, port: int = 0, state: StandinState | None = None) -> None:
        self.state = state or StandinState()
        super().__init__(_Server(port, _Handler, self.state), "hubspot-standin", stop=self.state.stop)

    def seed_from_demo(self, directory: Path, timezone: str = "Asia/Tokyo") -> Seeded:
        """Load a `kizuna demo-data` directory (see `seed_from_demo`)."""
        return seed_from_demo(self.state, directory, timezone)


@pytest.fixture
def hubspot_standin() -> Iterator[HubSpotStandin]:
    """An empty HubSpot account for one test (import this fixture into a conftest)."""
    with HubSpotStandin() as standin:
        yield standin


# -- loading the demo data set ---------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What `seed_from_demo` created: the connector options that read it back, and the record counts."""

    options: dict[str, Any]
    counts: dict[str, int]


# The options that read a seeded account back into the demo's rows (customer ids are the demo's, kept in a
# company property, so other sources can link to them).
SEED_OPTIONS: dict[str, Any] = {
    "customer_id_property": "kizuna_customer_id",
    "properties": {
        "customers": {"cs_owner_email": "kizuna_cs_owner"},
        "contacts": {"is_primary": "kizuna_is_primary"},
        "activities": {"outcome": "kizuna_outcome"},
    },
}
_CALL_GUIDS = {
    "conversation": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
    "no_answer": "73a0d17f-1163-4015-bdd5-ec830791da20",
    "voicemail": "b2cf5968-551e-4856-9783-52b3da59a7d0",
}
_DEAL_TYPES = {"new": "newbusiness", "upsell": "existingbusiness", "renewal": "renewal", "cross_sell": "cross_sell"}
_DEAL_STAGES = {
    "qualification": "qualifiedtobuy",
    "proposal": "presentationscheduled",
    "negotiation": "contractsent",
    "closed_won": "closedwon",
    "closed_lost": "closedlost",
}


def hubspot_id(demo_id: str) -> str:
    """The record id a demo id gets in the stand-in: its digits ('CT0000012' -> '12')."""
    return str(int(re.sub(r"\D", "", demo_id)))


def _rows(directory: Path, table: str) -> list[dict[str, str]]:
    path = directory / f"{table}.csv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def seed_from_demo(state: StandinState, directory: Path, timezone: str = "Asia/Tokyo") -> Seeded:
    """Load the CRM part of a `kizuna demo-data` directory as HubSpot records.

    customers -> companies (the demo id in the kizuna_customer_id property), contacts, deals (HubSpot's default
    pipeline and deal types; the owner, the creator as hs_created_by_user_id, the hand-off and the review date
    in kizuna's properties), activities -> calls, meetings (visits: hs_activity_type 訪問), notes and emails
    with their standard outcome properties (kizuna_outcome where HubSpot has no standard value, e.g. a call
    that booked a meeting) and the review date (kizuna_next_review_on), support_tickets -> tickets; owners from
    every owner and creator address. Record ids are the demo
    ids' digits (`hubspot_id`); naive demo times are read in `timezone` and stored in UTC.
    """
    if not (directory / "customers.csv").exists():
        raise FileNotFoundError(f"{directory}: no customers.csv (write the demo data as CSV, without --excel)")
    tz = ZoneInfo(timezone)

    def when(text: str) -> str | None:
        if not text:
            return None
        at = datetime.fromisoformat(text.replace("/", "-"))
        return iso(round((at if at.tzinfo else at.replace(tzinfo=tz)).timestamp() * 1000))

    customers = _rows(directory, "customers")
    activities = _rows(directory, "activities")
    deals = _rows(directory, "deals")
    emails = sorted(
        {r[c] for r in customers for c in ("owner_email", "cs_owner_email") if r.get(c)}
        | {r["owner_email"] for r in activities if r.get("owner_email")}
        | {r[c] for r in deals for c in ("owner_email", "created_by_email") if r.get(c)}
    )
    owner = {email: state.add_owner(email, id=5000 + n) for n, email in enumerate(emails, start=1)}
    counts: dict[str, int] = {"owners": len(owner)}
    company_of: dict[str, str] = {}
    for r in customers:
        company_of[r["customer_id"]] = state.create(
            "companies",
            {
                "name": r["name"],
                "industry": r.get("industry") or None,
                "numberofemployees": r.get("employee_count") or None,
                "state": r.get("prefecture") or None,
                "country": r.get("country") or None,
                "createdate": when(r.get("created_at", "")),
                "hubspot_owner_id": owner.get(r.get("owner_email", "")),
                "kizuna_cs_owner": owner.get(r.get("cs_owner_email", "")),
                "kizuna_customer_id": r["customer_id"],
            },
            id=hubspot_id(r["customer_id"]),
        )
    counts["companies"] = len(customers)
    contacts = _rows(directory, "contacts")
    for r in contacts:
        name = r.get("name") or ""
        head, _, tail = name.partition(" ")
        family_first = any(ord(ch) > 0x3000 for ch in name)
        first, last = (tail, head) if family_first else (head, tail)
        opted_in = r.get("marketing_opt_in", "").lower() == "true"
        state.create(
            "contacts",
            {
                "email": r["email"],
                "firstname": first or None,
                "lastname": last or None,
                "jobtitle": r.get("role") or None,
                "hs_language": r.get("locale") or None,
                "kizuna_is_primary": r.get("is_primary") or None,
                "hs_legal_basis": "Freely given consent from contact" if opted_in else None,
                "hs_email_optout": "true" if r.get("marketing_opt_in", "").lower() == "false" else None,
            },
            id=hubspot_id(r["contact_id"]),
            company=company_of[r["customer_id"]],
        )
    counts["contacts"] = len(contacts)
    for r in deals:
        creator = owner.get(r.get("created_by_email", ""))
        state.create(
            "deals",
            {
                "dealtype": _DEAL_TYPES.get(r.get("type", ""), r.get("type") or None),
                "dealstage": _DEAL_STAGES.get(r.get("stage", ""), r.get("stage") or None),
                "pipeline": "default",
                "amount": r.get("amount") or None,
                "createdate": when(r.get("created_at", "")),
                "closedate": when(r.get("closed_at", "")),
                "hs_analytics_source": r.get("source") or None,
                "hubspot_owner_id": owner.get(r.get("owner_email", "")),
                "hs_created_by_user_id": None if creator is None else user_id(creator),
                # the hand-off (date-time properties, ISO 8601 in UTC) and the review date (a date property)
                **{f"kizuna_{c}": when(r.get(c, "")) for c in ("handed_off_at", "accepted_at", "rejected_at")},
                "kizuna_next_review_on": r.get("next_review_on") or None,
            },
            id=hubspot_id(r["deal_id"]),
            company=company_of[r["customer_id"]],
        )
    counts["deals"] = len(deals)
    for r in activities:
        kind, outcome = r["type"], r.get("outcome") or ""
        props: dict[str, Any] = {
            "hs_timestamp": when(r["occurred_at"]),
            "hubspot_owner_id": owner.get(r.get("owner_email", "")),
            "kizuna_next_review_on": r.get("next_review_on") or None,  # a custom date property on the engagement
        }
        object_type = {"call": "calls", "meeting": "meetings", "visit": "meetings", "note": "notes", "email": "emails"}[
            kind
        ]
        standard = True
        if kind == "call":
            props["hs_call_disposition"] = _CALL_GUIDS.get(outcome, _CALL_GUIDS["conversation"])
            standard = outcome in _CALL_GUIDS
        elif kind in ("meeting", "visit"):
            props["hs_meeting_outcome"] = outcome.upper() or None
            props["hs_activity_type"] = "訪問" if kind == "visit" else None
        elif kind == "email":
            props["hs_email_direction"] = "INCOMING_EMAIL" if outcome == "replied" else "EMAIL"
            props["hs_email_status"] = "BOUNCED" if outcome == "bounced" else "SENT"
            standard = outcome in ("sent", "replied", "bounced")
        else:
            standard = not outcome
        if not standard:
            props["kizuna_outcome"] = outcome
        state.create(object_type, props, id=hubspot_id(r["activity_id"]), company=company_of[r["customer_id"]])
        counts[object_type] = counts.get(object_type, 0) + 1
    tickets = _rows(directory, "support_tickets")
    for r in tickets:
        state.create(
            "tickets",
            {
                "createdate": when(r["created_at"]),
                "hs_ticket_category": r.get("category") or None,
                "subject": "問い合わせ",
            },
            id=hubspot_id(r["ticket_id"]),
            company=company_of[r["customer_id"]],
        )
    counts["tickets"] = len(tickets)
    return Seeded(options=json.loads(json.dumps(SEED_OPTIONS)), counts=counts)


def seed_contacts(state: StandinState, count: int, companies: int = 1000) -> None:
    """`count` contacts spread over `companies` companies, for the benchmark (one millisecond apart)."""
    with state.lock:
        tick, state.tick_ms = state.tick_ms, 1
        for c in range(1, companies + 1):
            state.create("companies", {"name": f"株式会社ベンチ{c:05d}"}, id=c)
        for n in range(1, count + 1):
            state.create(
                "contacts",
                {
                    "email": f"contact{n:07d}@example.co.jp",
                    "firstname": "太郎",
                    "lastname": f"山田{n}",
                    "jobtitle": "管理者",
                    "hs_language": "ja",
                    "hs_legal_basis": "Freely given consent from contact",
                },
                id=n,
                company=(n - 1) % companies + 1,
            )
        state.tick_ms = tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--contacts", type=int, default=0, help="seed this many contacts (for the benchmark)")
    parser.add_argument("--demo-dir", type=Path, help="seed a `kizuna demo-data` directory")
    parser.add_argument("--companies", type=int, default=0, help="seed companies 1..N (the write-back benchmark)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds every answer waits")
    args = parser.parse_args()
    state = StandinState(record_requests=False, latency_seconds=args.latency)
    with state.lock:
        for n in range(1, args.companies + 1):
            state.create("companies", {"name": f"株式会社ベンチ{n:06d}"}, id=n)
    if args.contacts:
        seed_contacts(state, args.contacts)
    if args.demo_dir:
        seed_from_demo(state, args.demo_dir)
    with HubSpotStandin(args.port, state) as standin:
        print(standin.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
