"""The HubSpot connector: companies, contacts, deals, activities and tickets into the contract's raw tables.

Per raw table and HubSpot object type the cursor is the latest last-modified date seen. A pull searches
(CRM search API) for records modified since the cursor (less `lookback_seconds`, for the search index's
lag), oldest first, each page a new search from the last date seen (and one date paged by record id when a
whole page shares it), so records modified meanwhile are not skipped and the search API's 10,000-result
limit per query is never reached. Archived records (the list endpoints with archived=true) and records
merged away (hs_merged_object_ids) are deleted.
Company ids become customer ids (the record id, or the `customer_id_property`); contacts reach their company
through associatedcompanyid, deals, tickets and activities through their company associations (v4 batch
read, primary first); owner and user ids become emails through the owners API. docs/sources.md has the rest.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kizuna.connectors.base import ChangeSink, Cursor, PullOutcome
from kizuna.connectors.hubspot_client import HubSpotApi
from kizuna.connectors.hubspot_mapping import (
    MAX_EXAMPLES,
    MERGEABLE,
    PRIMARY_COMPANY_TYPE_IDS,
    SINGULAR,
    TABLE_OBJECTS,
    HubSpotMapping,
    HubSpotOptions,
    modified_property,
    sources_file,
)
from kizuna.connectors.hubspot_values import millis_to_iso, to_millis
from kizuna.connectors.secrets import resolve_secret
from kizuna.core.contract import Table
from kizuna.core.settings import Settings

log = logging.getLogger(__name__)

Record = dict[str, Any]
BATCH_READ_SIZE = 100  # ids per batch read of companies
_MODIFIED = "_modified_ms"  # a search result's last-modified date in epoch ms, added when it arrives


@dataclass
class _PullStats:
    upserted: int = 0
    deleted: int = 0
    without_company: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    company_merged: bool = False
    seen: set[tuple[str, str, int | None]] = field(default_factory=set)  # (object type, id, modified)


class HubSpotConnector:
    """Feeds customers, contacts, deals, activities and support_tickets from one HubSpot account."""

    name = "hubspot"
    tables = tuple(TABLE_OBJECTS)

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.options = HubSpotOptions.parse(options, sources_file(settings.sources_config))
        self.mapping = HubSpotMapping(self.options, settings.timezone)
        token = resolve_secret(
            settings.hubspot_token, settings.hubspot_token_block, "the HubSpot token", "KIZUNA_HUBSPOT_TOKEN"
        )
        self.api = HubSpotApi(
            token, settings.hubspot_base_url, settings.connector_max_retries, settings.connector_timeout_seconds
        )
        self._owners: dict[str, str] | None = None  # "<owner id>" and "user:<user id>" -> email
        self._archived_owners_read = False
        self._company_keys: dict[str, str | None] = {}
        self._stage_labels: dict[tuple[str, str], str] | None = None

    def __repr__(self) -> str:  # never the token
        return f"HubSpotConnector(tables={self.tables})"

    # -- the Connector protocol ----------------------------------------------------------------------------

    def pull(self, table: Table, cursor: Cursor | None, sink: ChangeSink) -> PullOutcome:
        started, requests = time.monotonic(), self.api.requests
        stats = _PullStats()
        new_cursor: Cursor = {}
        snapshot = cursor is None
        for object_type in TABLE_OBJECTS[table.name]:
            since = None if cursor is None else cursor.get(object_type)
            if cursor is not None:
                self._delete_archived(table.name, object_type, sink, stats)
            latest = self._pull_changed(table.name, object_type, since, sink, stats)
            new_cursor[object_type] = _later(since, latest)
        if stats.company_merged and not snapshot:
            # The merged-away company's customer id (a property value) is unknown now: pull the whole table,
            # so the stored mirror is replaced and the old id disappears.
            log.warning("hubspot customers: companies were merged; pulling every company once (snapshot)")
            for object_type in TABLE_OBJECTS[table.name]:
                new_cursor[object_type] = _later(
                    new_cursor[object_type], self._pull_changed(table.name, object_type, None, sink, stats)
                )
            snapshot = True
        self._report(table.name, stats, time.monotonic() - started, self.api.requests - requests)
        return PullOutcome(cursor=new_cursor, snapshot=snapshot)

    # -- changed records ------------------------------------------------------------------------------------

    def _pull_changed(
        self, table: str, object_type: str, since: str | None, sink: ChangeSink, stats: _PullStats
    ) -> str | None:
        """Upsert every record of `object_type` modified since `since`; the latest modified date seen."""
        since_ms = to_millis(since)
        lower = None if since_ms is None else since_ms - self.options.lookback_seconds * 1000
        latest: int | None = None
        prop = modified_property(object_type)
        for page in self._changed_pages(object_type, lower, self.mapping.properties(table, object_type)):
            self._write_page(table, object_type, page, sink, stats)
            for record in page:
                modified = _modified(record, prop)
                if modified is not None and (latest is None or modified > latest):
                    latest = modified
        return None if latest is None else millis_to_iso(latest)

    def _changed_pages(self, object_type: str, lower: int | None, properties: list[str]) -> Iterator[list[Record]]:
        """Pages of records modified at or after `lower` (all when None), oldest first.

        Every page is a new search from the last date seen (keyset paging), not the next `after` offset: a
        record modified while we page moves to the end of the order and would shift an unread record below
        the next offset, unseen. It also never meets the search API's 10,000-result limit per query.
        """
        prop = modified_property(object_type)
        operator = "GTE"
        while True:
            filters: list[dict[str, Any]] = []
            if lower is not None:
                filters.append({"property_name": prop, "operator": operator, "value": str(lower)})
            page = self._search_page(object_type, filters, prop, properties)
            if page:
                yield page
            stamps = [m for r in page if (m := _modified(r, prop)) is not None]
            if len(page) < self.options.page_size or not stamps:
                return
            first, last = min(stamps), max(stamps)
            if first == last:
                # A whole page shares one date (a bulk import): page through that date by record id.
                at = [{"property_name": prop, "operator": "EQ", "value": str(last)}]
                yield from self._pages_by_id(object_type, at, properties)
                lower, operator = last, "GT"
            else:
                lower, operator = last, "GTE"  # records at `last` come again: the later copy wins

    def _pages_by_id(
        self, object_type: str, filters: list[dict[str, Any]], properties: list[str]
    ) -> Iterator[list[Record]]:
        """Every record matching `filters`, a page at a time in record id order (keyset paging)."""
        after_id: int | None = None
        while True:
            since = (
                []
                if after_id is None
                else [{"property_name": "hs_object_id", "operator": "GT", "value": str(after_id)}]
            )
            page = self._search_page(object_type, filters + since, "hs_object_id", properties)
            if page:
                yield page
                after_id = max(int(r["id"]) for r in page)
            if len(page) < self.options.page_size:
                return

    def _search_page(
        self, object_type: str, filters: list[dict[str, Any]], sort: str, properties: list[str]
    ) -> list[Record]:
        answer = self.api.search(
            object_type,
            {
                "filter_groups": [filters] if filters else [],
                "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                "properties": properties,
                "limit": self.options.page_size,
            },
        )
        records = [r for r in answer.get("results") or [] if isinstance(r, dict) and "id" in r]
        prop = modified_property(object_type)
        for record in records:  # read once: paging, the cursor and the de-duplication all need it
            record[_MODIFIED] = to_millis((record.get("properties") or {}).get(prop)) or to_millis(
                record.get("updatedAt")
            )
        return records

    def _write_page(
        self, table: str, object_type: str, page: list[Record], sink: ChangeSink, stats: _PullStats
    ) -> None:
        prop = modified_property(object_type)
        fresh = []
        for record in page:  # the record at a page's last date comes again on the next page
            version = (object_type, str(record["id"]), _modified(record, prop))
            if version not in stats.seen:
                stats.seen.add(version)
                fresh.append(record)
        if not fresh:
            return
        customer_ids = self._customer_ids(table, object_type, fresh)
        for record in fresh:
            record_id = str(record["id"])
            ref = f"{SINGULAR[object_type]} {record_id}"
            if object_type in MERGEABLE:
                self._delete_merged(table, record, sink, stats)
            customer_id = customer_ids.get(record_id)
            if customer_id is None:
                stats.without_company[object_type] += 1
                if len(stats.examples) < MAX_EXAMPLES:
                    stats.examples.append(ref)
                if table != "customers":
                    sink.delete(record_id)  # it may have lost its company since the last pull
                continue
            row = self.mapping.row(
                table, object_type, record, customer_id, self._owner_email, self._stage_label, self._user_email
            )
            sink.upsert(row, ref)
            stats.upserted += 1

    def _delete_merged(self, table: str, record: Record, sink: ChangeSink, stats: _PullStats) -> None:
        merged = (record.get("properties") or {}).get("hs_merged_object_ids") or ""
        ids = {m.strip() for m in str(merged).split(";") if m.strip()} - {str(record["id"])}
        if not ids:
            return
        if table == "customers" and self.options.customer_id_property is not None:
            stats.company_merged = True
            return
        for merged_id in sorted(ids):
            sink.delete(merged_id)
            stats.deleted += 1

    # -- archived records ----------------------------------------------------------------------------------

    def _delete_archived(self, table: str, object_type: str, sink: ChangeSink, stats: _PullStats) -> None:
        """Delete the keys of every archived record (HubSpot keeps them 90 days; deleting twice is harmless)."""
        by_property = table == "customers" and self.options.customer_id_property is not None
        properties = [self.options.customer_id_property] if by_property and self.options.customer_id_property else []
        keys: set[str] = set()
        after: str | None = None
        while True:
            answer = self.api.list_page(object_type, archived=True, properties=properties, after=after)
            for record in answer.get("results") or []:
                key = self.mapping.company_key(record) if table == "customers" else str(record.get("id"))
                if key:
                    keys.add(key)
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
        if by_property and keys:
            keys -= self._keys_still_live(table, sorted(keys), sink, stats)
        for key in sorted(keys):
            sink.delete(key)
        stats.deleted += len(keys)

    def _keys_still_live(self, table: str, keys: list[str], sink: ChangeSink, stats: _PullStats) -> set[str]:
        """Customer ids of archived companies that a live company also carries (a deleted duplicate): those
        companies are pulled again instead of their customer being deleted."""
        prop = self.options.customer_id_property
        assert prop is not None
        live: set[str] = set()
        properties = self.mapping.properties(table, "companies")
        for start in range(0, len(keys), BATCH_READ_SIZE):
            chunk = keys[start : start + BATCH_READ_SIZE]
            filters = [{"property_name": prop, "operator": "IN", "values": chunk}]
            for page in self._pages_by_id("companies", filters, properties):
                self._write_page(table, "companies", page, sink, stats)
                live |= {k for r in page if (k := self.mapping.company_key(r))}
        return live

    # -- lookups: companies, owners, pipeline stages -------------------------------------------------------

    def _customer_ids(self, table: str, object_type: str, page: list[Record]) -> dict[str, str | None]:
        """Record id -> customer id (None: no company)."""
        if table == "customers":
            return {str(r["id"]): self.mapping.company_key(r) for r in page}
        if object_type == "contacts":
            companies = {
                str(r["id"]): str(c) if (c := (r.get("properties") or {}).get("associatedcompanyid")) else None
                for r in page
            }
        else:
            companies = self._associated_companies(object_type, [str(r["id"]) for r in page])
        keys = self._company_keys_of({c for c in companies.values() if c})
        return {record_id: keys.get(c) if c else None for record_id, c in companies.items()}

    def _associated_companies(self, object_type: str, ids: list[str]) -> dict[str, str | None]:
        answer = self.api.company_associations(object_type, ids)
        primary = PRIMARY_COMPANY_TYPE_IDS.get(object_type)
        found: dict[str, str | None] = dict.fromkeys(ids)
        for result in answer.get("results") or []:
            record_id = str((result.get("from") or {}).get("id"))
            targets = result.get("to") or []
            chosen = [t for t in targets if any(a.get("typeId") == primary for a in t.get("associationTypes") or [])]
            candidates = sorted(int(t["toObjectId"]) for t in (chosen or targets) if "toObjectId" in t)
            if record_id in found and candidates:
                found[record_id] = str(candidates[0])
        return found

    def _company_keys_of(self, company_ids: set[str]) -> dict[str, str | None]:
        if self.options.customer_id_property is None:
            return {c: c for c in company_ids}
        missing = sorted(c for c in company_ids if c not in self._company_keys)
        prop = self.options.customer_id_property
        for start in range(0, len(missing), BATCH_READ_SIZE):
            chunk = missing[start : start + BATCH_READ_SIZE]
            answer = self.api.batch_read("companies", chunk, [prop])
            self._company_keys.update(dict.fromkeys(chunk))  # not found (archived): no customer
            for record in answer.get("results") or []:
                self._company_keys[str(record.get("id"))] = self.mapping.company_key(record)
        return {c: self._company_keys.get(c) for c in company_ids}

    def _owner_email(self, owner_id: str) -> str | None:
        if self._owners is None:
            self._owners = {}
            self._read_owners(archived=False)
        if owner_id not in self._owners and not self._archived_owners_read:
            self._archived_owners_read = True  # deactivated users still own (and created) old records
            self._read_owners(archived=True)
        return self._owners.get(owner_id)

    def _user_email(self, user_id: str) -> str | None:
        """A HubSpot user id (hs_created_by_user_id) -> the email of the owner with that userId."""
        return self._owner_email(f"user:{user_id}")

    def _read_owners(self, archived: bool) -> None:
        assert self._owners is not None
        after: str | None = None
        while True:
            answer = self.api.owners_page(archived=archived, after=after)
            for owner in answer.get("results") or []:
                if owner.get("id") is not None and owner.get("email"):
                    email = str(owner["email"]).strip()
                    self._owners.setdefault(str(owner["id"]), email)
                    # a deactivated user's userId is null; userIdIncludingInactive keeps it
                    for user in {owner.get("userId"), owner.get("userIdIncludingInactive")} - {None}:
                        self._owners.setdefault(f"user:{user}", email)
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return

    def _stage_label(self, pipeline: str | None, stage: str) -> str | None:
        if self._stage_labels is None:
            self._stage_labels = {}
            for p in self.api.pipelines("deals").get("results") or []:
                for s in p.get("stages") or []:
                    self._stage_labels[(str(p.get("id")), str(s.get("id")))] = str(s.get("label") or "")
                    self._stage_labels.setdefault(("", str(s.get("id"))), str(s.get("label") or ""))
        return self._stage_labels.get((pipeline or "", stage)) or self._stage_labels.get(("", stage)) or None

    # -- reporting -----------------------------------------------------------------------------------------

    def _report(self, table: str, stats: _PullStats, seconds: float, requests: int) -> None:
        log.info(
            "hubspot %s: %d records upserted, %d keys deleted in %.1f s (%d requests)",
            table,
            stats.upserted,
            stats.deleted,
            seconds,
            requests,
        )
        if stats.without_company:
            counts = ", ".join(f"{n} {o}" for o, n in sorted(stats.without_company.items()))
            what = "a customer id (customer_id_property)" if table == "customers" else "an associated company"
            log.warning(
                "hubspot %s: skipped records without %s: %s (e.g. %s)",
                table,
                what,
                counts,
                ", ".join(stats.examples),
            )
        if self.mapping.unknown_deal_types:
            values = ", ".join(f"{v!r} ({n})" for v, n in self.mapping.unknown_deal_types.most_common())
            log.warning(
                "hubspot deals: deal types with no contract type, left empty: %s; map them with the "
                "hubspot.deal_types option",
                values,
            )
            self.mapping.unknown_deal_types.clear()
        if self.mapping.unresolved_people:
            fallback = f"; owner ids: {self.options.owner_fallback}" if self.options.owner_fallback else ""
            found = f"{self.mapping.unresolved_people} owner or user ids not in the owners API, left empty{fallback}"
            log.warning("hubspot %s: %s (e.g. %s)", table, found, ", ".join(self.mapping.unresolved_examples))
            self.mapping.unresolved_people, self.mapping.unresolved_examples = 0, []


def _modified(record: Record, prop: str) -> int | None:
    if _MODIFIED in record:
        return record[_MODIFIED]
    return to_millis((record.get("properties") or {}).get(prop)) or to_millis(record.get("updatedAt"))


def _later(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if (to_millis(a) or 0) >= (to_millis(b) or 0) else b
