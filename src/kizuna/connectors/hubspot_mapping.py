"""HubSpot records -> contract rows: which object and property feeds each column, and how values are read.

docs/sources.md carries the same mapping as a table, column by column. Options (the `hubspot:` part of the
sources file) change property names and value maps; everything else is fixed here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from kizuna.connectors.hubspot_values import (
    DEFAULT_CALL_DISPOSITIONS,
    DEFAULT_DEAL_STAGES,
    DEFAULT_DEAL_TYPES,
    DEFAULT_VISIT_MEETING_TYPES,
    READERS,
    boolean,
    full_name,
    locale,
    marketing_opt_in,
    parse_date,
)
from kizuna.core.contract import TABLES_BY_NAME, Column, ColumnType
from kizuna.core.errors import SourceError

# Raw table -> the HubSpot object types that feed it.
TABLE_OBJECTS: dict[str, tuple[str, ...]] = {
    "customers": ("companies",),
    "contacts": ("contacts",),
    "deals": ("deals",),
    "activities": ("calls", "meetings", "notes", "emails"),
    "support_tickets": ("tickets",),
}
SINGULAR = {
    "companies": "company",
    "contacts": "contact",
    "deals": "deal",
    "calls": "call",
    "meetings": "meeting",
    "notes": "note",
    "emails": "email",
    "tickets": "ticket",
}
ACTIVITY_TYPES = {"calls": "call", "meetings": "meeting", "notes": "note", "emails": "email"}
MERGEABLE = frozenset({"companies", "contacts", "deals", "tickets"})  # their merges list hs_merged_object_ids
# HubSpot-defined "primary company" association type ids (engagements have none: the lowest company id wins).
PRIMARY_COMPANY_TYPE_IDS = {"contacts": 1, "deals": 5, "tickets": 26}


def modified_property(object_type: str) -> str:
    """The last-modified property the search API filters and sorts on (contacts spell it differently)."""
    return "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"


# Contract column -> HubSpot property, per table. None: no standard property (set one with the
# `properties` option) or derived from several properties (see `HubSpotMapping.row`).
DEFAULT_PROPERTIES: dict[str, dict[str, str | None]] = {
    "customers": {
        "name": "name",
        "industry": "industry",
        "employee_count": "numberofemployees",
        "prefecture": "state",
        "country": "country",
        "created_at": "createdate",
        "owner_email": "hubspot_owner_id",
        "cs_owner_email": None,
    },
    "contacts": {
        "email": "email",
        "name": None,  # lastname + firstname
        "role": "jobtitle",
        "is_primary": None,
        "marketing_opt_in": None,  # hs_email_optout, hs_legal_basis
        "locale": "hs_language",
    },
    "deals": {
        "type": "dealtype",
        "stage": "dealstage",
        "amount": "amount",
        "created_at": "createdate",
        "closed_at": "closedate",
        "is_won": None,  # hs_is_closed, hs_is_closed_won
        "source": "hs_analytics_source",
        "owner_email": "hubspot_owner_id",
        "created_by_email": "hs_created_by_user_id",  # a user id: the owner with that userId
        # kizuna's own properties (`kizuna crm setup` or an admin creates them, docs/sources.md); absent: blank
        "handed_off_at": "kizuna_handed_off_at",
        "accepted_at": "kizuna_accepted_at",
        "rejected_at": "kizuna_rejected_at",
        "next_review_on": "kizuna_next_review_on",
    },
    "activities": {
        "occurred_at": "hs_timestamp",
        "owner_email": "hubspot_owner_id",
        "outcome": None,
        "next_review_on": "kizuna_next_review_on",
    },
    "support_tickets": {"created_at": "createdate", "category": "hs_ticket_category"},
}
# Properties read besides the mapped ones, per object type.
EXTRA_PROPERTIES: dict[str, tuple[str, ...]] = {
    "contacts": ("firstname", "lastname", "hs_email_optout", "hs_legal_basis", "associatedcompanyid"),
    "deals": ("pipeline", "hs_is_closed", "hs_is_closed_won"),
    "calls": ("hs_call_disposition",),
    "meetings": ("hs_meeting_outcome", "hs_activity_type"),
    "emails": ("hs_email_direction", "hs_email_status"),
}
MAX_EXAMPLES = 5  # records named in a pull's warnings
OWNER_COLUMNS = frozenset({"owner_email", "cs_owner_email"})  # values are owner ids
USER_COLUMNS = frozenset({"created_by_email"})  # values are user ids (hs_created_by_user_id)


@dataclass(frozen=True)
class HubSpotOptions:
    """The `hubspot:` options of the sources file (all optional; docs/sources.md)."""

    customer_id_property: str | None = None
    properties: dict[str, dict[str, str]] = field(default_factory=dict)
    deal_types: dict[str, str] = field(default_factory=dict)
    deal_stages: dict[str, str] = field(default_factory=dict)
    call_dispositions: dict[str, str] = field(default_factory=dict)
    visit_meeting_types: tuple[str, ...] = DEFAULT_VISIT_MEETING_TYPES
    owner_fallback: str | None = None
    lookback_seconds: int = 300
    page_size: int = 100

    @classmethod
    def parse(cls, options: Mapping[str, Any], where: str) -> HubSpotOptions:
        """Check every option; errors name the file and `hubspot.<option>`."""

        def fail(name: str, message: str) -> SourceError:
            return SourceError(where, None, f"hubspot.{name}", message)

        known = {f for f in cls.__dataclass_fields__}
        for name in options:
            if name not in known:
                raise fail(str(name), f"unknown option; expected one of {', '.join(sorted(known))}")

        def text(name: str) -> str | None:
            value = options.get(name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise fail(name, "must be a non-empty text")
            return value.strip() if isinstance(value, str) else None

        def mapping(name: str, allowed: tuple[str, ...] | None = None) -> dict[str, str]:
            value = options.get(name) or {}
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise fail(name, "must map HubSpot values to text")
            if allowed is not None:
                for k, v in value.items():
                    if v not in allowed:
                        raise fail(f"{name}.{k}", f"{v!r} is not one of {', '.join(allowed)}")
            return {str(k): v for k, v in value.items()}

        def number(name: str, default: int, low: int, high: int) -> int:
            value = options.get(name, default)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise fail(name, f"must be a whole number from {low} to {high}")
            return value

        properties = options.get("properties") or {}
        if not isinstance(properties, dict):
            raise fail("properties", "must map raw tables to {column: HubSpot property}")
        checked: dict[str, dict[str, str]] = {}
        for table, columns in properties.items():
            if table not in DEFAULT_PROPERTIES:
                raise fail(f"properties.{table}", f"expected one of {', '.join(DEFAULT_PROPERTIES)}")
            if not isinstance(columns, dict):
                raise fail(f"properties.{table}", "must map contract columns to HubSpot property names")
            for column, prop in columns.items():
                if column not in DEFAULT_PROPERTIES[table]:
                    expected = ", ".join(DEFAULT_PROPERTIES[table])
                    raise fail(f"properties.{table}.{column}", f"cannot be mapped; expected one of {expected}")
                if not isinstance(prop, str) or not prop.strip():
                    raise fail(f"properties.{table}.{column}", "must be a HubSpot property name")
            checked[str(table)] = {str(c): p.strip() for c, p in columns.items()}
        visits = options.get("visit_meeting_types", list(DEFAULT_VISIT_MEETING_TYPES))
        if not isinstance(visits, list) or not all(isinstance(v, str) for v in visits):
            raise fail("visit_meeting_types", "must be a list of hs_activity_type values")
        return cls(
            customer_id_property=text("customer_id_property"),
            properties=checked,
            deal_types=mapping("deal_types", TABLES_BY_NAME["deals"].column("type").allowed),
            deal_stages=mapping("deal_stages"),
            call_dispositions=mapping("call_dispositions"),
            visit_meeting_types=tuple(visits),
            owner_fallback=text("owner_fallback"),
            lookback_seconds=number("lookback_seconds", 300, 0, 86_400),
            page_size=number("page_size", 100, 1, 200),
        )


_KEYS = {t: str(TABLES_BY_NAME[t].key) for t in ("contacts", "deals", "activities", "support_tickets")}


@dataclass
class HubSpotMapping:
    """Turns one HubSpot record into one contract row; counts what it could not map, for the pull's warning."""

    options: HubSpotOptions
    timezone: str = "UTC"  # business time: a date-time property read into a date column gives its date here
    unknown_deal_types: Counter[str] = field(default_factory=Counter)
    unresolved_people: int = 0  # owner and user ids the owners API does not know
    unresolved_examples: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.deal_types = {**DEFAULT_DEAL_TYPES, **{k.lower(): v for k, v in self.options.deal_types.items()}}
        self.deal_stages = {**DEFAULT_DEAL_STAGES, **self.options.deal_stages}
        self.call_dispositions = {**DEFAULT_CALL_DISPOSITIONS, **self.options.call_dispositions}
        self.visit_types = {v.strip().lower() for v in self.options.visit_meeting_types}
        self._plans: dict[str, list[tuple[str, str | None, Callable[[str | None], object] | None]]] = {}

    def property_of(self, table: str, column: str) -> str | None:
        return self.options.properties.get(table, {}).get(column, DEFAULT_PROPERTIES[table][column])

    def kizuna_properties(self) -> dict[str, list[tuple[str, str, Column]]]:
        """Per object type, the properties named kizuna_* this mapping reads, with the table and column each
        feeds. HubSpot
        defines none of them (an admin, or `kizuna crm setup`, creates them); a column mapped to a property of the
        company's own choosing is left out, as that property exists already."""
        found: dict[str, list[tuple[str, str, Column]]] = {}
        for table, columns in DEFAULT_PROPERTIES.items():
            for column in columns:
                name = self.property_of(table, column)
                if name is not None and name.startswith("kizuna_"):
                    for object_type in TABLE_OBJECTS[table]:
                        found.setdefault(object_type, []).append((name, table, TABLES_BY_NAME[table].column(column)))
        return found

    def properties(self, table: str, object_type: str) -> list[str]:
        """Every property a search or list of this object type must return."""
        names = {p for c in DEFAULT_PROPERTIES[table] if (p := self.property_of(table, c))}
        names |= set(EXTRA_PROPERTIES.get(object_type, ()))
        names.add(modified_property(object_type))
        if object_type in MERGEABLE:
            names.add("hs_merged_object_ids")
        if object_type == "companies" and self.options.customer_id_property:
            names.add(self.options.customer_id_property)
        return sorted(names)

    def company_key(self, record: Mapping[str, Any]) -> str | None:
        """A company's customer_id: its record id, or the value of `customer_id_property`."""
        if self.options.customer_id_property is None:
            return str(record["id"])
        value = (record.get("properties") or {}).get(self.options.customer_id_property)
        return str(value).strip() or None if value is not None else None

    def row(
        self,
        table: str,
        object_type: str,
        record: Mapping[str, Any],
        customer_id: str | None,
        owner_email: Callable[[str], str | None],
        stage_label: Callable[[str | None, str], str | None],
        user_email: Callable[[str], str | None] | None = None,
    ) -> dict[str, object]:
        """The contract row of one record. `customer_id` was resolved by the caller (associations); owner ids
        and user ids become emails through `owner_email` and `user_email` (None: not found)."""
        props: Mapping[str, str | None] = record.get("properties") or {}
        row: dict[str, object] = {}
        for column, prop, read in self._plan(table):
            raw = props.get(prop) if prop else None
            if read is not None:
                row[column] = read(raw)
            elif raw is not None and str(raw).strip():
                lookup = owner_email if column in OWNER_COLUMNS else user_email
                row[column] = self._person(str(raw).strip(), lookup, f"{SINGULAR[object_type]} {record['id']}", prop)
                if row[column] is None and column in OWNER_COLUMNS:
                    row[column] = self.options.owner_fallback
            else:
                row[column] = None
        if table == "customers":
            row["customer_id"] = customer_id
        else:
            row[_KEYS[table]] = str(record["id"])
            row["customer_id"] = customer_id
        getattr(self, f"_finish_{table}")(row, object_type, props, stage_label)
        return row

    def _plan(self, table: str) -> list[tuple[str, str | None, Callable[[str | None], object] | None]]:
        """Per column: the property and how to read it (None: an owner or user id), worked out once per table."""
        plan = self._plans.get(table)
        if plan is None:
            contract = TABLES_BY_NAME[table]
            plan = [
                (c, self.property_of(table, c), self._reader(c, contract.column(c).type))
                for c in DEFAULT_PROPERTIES[table]
            ]
            self._plans[table] = plan
        return plan

    def _reader(self, column: str, kind: ColumnType) -> Callable[[str | None], object] | None:
        if column in OWNER_COLUMNS | USER_COLUMNS:
            return None
        if kind is ColumnType.DATE:
            return partial(parse_date, timezone=self.timezone)
        return READERS[kind]

    def _person(self, value: str, lookup: Callable[[str], str | None] | None, ref: str, prop: str | None) -> str | None:
        """An owner's or user's email; a value not found is counted, with its record and property, for the
        pull's warning."""
        if "@" in value:  # a text property holding an address already
            return value
        email = lookup(value) if lookup is not None else None
        if email is None:
            self.unresolved_people += 1
            if len(self.unresolved_examples) < MAX_EXAMPLES:
                self.unresolved_examples.append(f"{ref} {prop}={value}")
        return email

    def _finish_customers(self, row: dict[str, object], *_: object) -> None:
        return None

    def _finish_contacts(
        self, row: dict[str, object], _object_type: str, props: Mapping[str, str | None], *_: object
    ) -> None:
        if row["name"] is None:
            row["name"] = full_name(props.get("firstname"), props.get("lastname"))
        if row["marketing_opt_in"] is None:
            row["marketing_opt_in"] = marketing_opt_in(props)
        row["locale"] = locale(row["locale"] if isinstance(row["locale"], str) else None)

    def _finish_deals(
        self,
        row: dict[str, object],
        _object_type: str,
        props: Mapping[str, str | None],
        stage_label: Callable[[str | None, str], str | None],
    ) -> None:
        raw_type = row["type"]
        if isinstance(raw_type, str):
            row["type"] = self.deal_types.get(raw_type.lower())
            if row["type"] is None:
                self.unknown_deal_types[raw_type] += 1
        stage = row["stage"] if isinstance(row["stage"], str) else None
        mapped = self.deal_stages.get(stage) if stage else None
        is_closed, won = boolean(props.get("hs_is_closed")), boolean(props.get("hs_is_closed_won"))
        if is_closed is None:  # records without HubSpot's calculated properties: trust the stage map
            is_closed, won = mapped in ("closed_won", "closed_lost"), mapped == "closed_won"
        if row["is_won"] is None:
            row["is_won"] = bool(won) if is_closed else None
        if not is_closed:
            row["closed_at"] = None  # an open deal's closedate is its expected close date
        if stage:
            if mapped is None and is_closed:
                mapped = "closed_won" if won else "closed_lost"
            row["stage"] = mapped or stage_label(props.get("pipeline"), stage) or stage
        if isinstance(row["source"], str):
            row["source"] = row["source"].lower()

    def _finish_activities(
        self, row: dict[str, object], object_type: str, props: Mapping[str, str | None], *_: object
    ) -> None:
        kind = ACTIVITY_TYPES[object_type]
        if kind == "meeting" and (props.get("hs_activity_type") or "").strip().lower() in self.visit_types:
            kind = "visit"
        row["type"] = kind
        if row["outcome"] is None:
            row["outcome"] = self._outcome(object_type, props)

    def _outcome(self, object_type: str, props: Mapping[str, str | None]) -> str | None:
        if object_type == "calls":
            disposition = (props.get("hs_call_disposition") or "").strip()
            return self.call_dispositions.get(disposition, disposition) or None
        if object_type == "meetings":
            return (props.get("hs_meeting_outcome") or "").strip().lower() or None
        if object_type == "emails":
            direction = (props.get("hs_email_direction") or "").strip().upper()
            status = (props.get("hs_email_status") or "").strip().upper()
            if direction == "INCOMING_EMAIL":
                return "replied"
            if status:
                return status.lower()  # sent, bounced, failed, scheduled, sending
            return "sent" if direction else None
        return None

    def _finish_support_tickets(self, row: dict[str, object], *_: object) -> None:
        return None


def sources_file(settings_path: Path | None) -> str:
    """How option errors name their origin."""
    return str(settings_path) if settings_path is not None else "sources file"
