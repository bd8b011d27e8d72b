"""The Stripe connector: subscriptions (one period per item and revenue state), invoices and customers.

First (or full) pull: every object through the list endpoints (`starting_after` / `has_more`), a
snapshot. Later pulls read the Events API (`created[gte]` the newest event seen) for the objects that
changed and fetch those again in the API version the client pins, so event payloads rendered in older
API versions never reach the mapping. Stripe keeps events 30 days: a cursor older than
STALE_AFTER_DAYS is dropped for a full pull, and the log says so. docs/sources.md explains set-up,
the mapping and what history a first pull can show.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from kizuna.connectors.base import ChangeSink, ConnectorError, Cursor, PullOutcome
from kizuna.connectors.secrets import resolve_secret
from kizuna.connectors.stripe_client import StripeApi
from kizuna.connectors.stripe_events import EVENT_TYPES, Event, events_since, newest_event_mark
from kizuna.connectors.stripe_mapping import (
    Lookups,
    MappingError,
    MappingOptions,
    customer_id_of,
    customer_row,
    invoice_row,
    local_date,
    stripe_customer_id,
    subscription_values,
)
from kizuna.connectors.stripe_periods import Entry, advance
from kizuna.core.contract import Table
from kizuna.core.errors import SourceError
from kizuna.core.settings import Settings

log = logging.getLogger(__name__)

CURSOR_VERSION = 1
STALE_AFTER_DAYS = 29  # Stripe keeps events for 30 days
# The subscription's own discounts come with their coupons as applied (a deleted coupon still shows there);
# an item's coupon would be one level deeper than Stripe expands (4), so it is looked up (see _coupon).
SUBSCRIPTION_EXPAND = ["data.customer", "data.discounts.source.coupon", "data.items.data.discounts"]
# previous_attributes that mean a subscription's revenue may have changed (the day of a new period)
REVENUE_ATTRIBUTES = frozenset({"items", "quantity", "plan", "discounts", "discount", "status", "trial_end"})


@dataclass(frozen=True)
class StripeOptions:
    """The `stripe:` options of the sources file (docs/sources.md)."""

    customer_id_metadata_key: str = "kizuna_customer_id"
    contract_term_metadata_key: str = "contract_term_months"
    plan_limit_metadata_key: str = "plan_limit"
    page_size: int = 100  # Stripe's maximum
    refetch_limit: int = 100  # more changed objects than this in one pull: list them all instead

    @classmethod
    def parse(cls, options: dict[str, Any], where: str) -> StripeOptions:
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in options.items():
            if name not in known:
                raise SourceError(where, None, f"stripe.{name}", f"unknown option; expected one of {', '.join(known)}")
            expected = int if known[name].type == "int" else str
            if not isinstance(value, expected) or isinstance(value, bool) or (expected is int and value < 1):
                kind = "a whole number of at least 1" if expected is int else "text"
                raise SourceError(where, None, f"stripe.{name}", f"must be {kind}, got {value!r}")
            values[name] = value
        parsed = cls(**values)
        if parsed.page_size > 100:
            raise SourceError(where, None, "stripe.page_size", "Stripe lists at most 100 objects per page")
        return parsed


class StripeConnector:
    """Feeds subscriptions, invoices and customers from one Stripe account (docs/sources.md)."""

    name = "stripe"
    tables: tuple[str, ...] = ("subscriptions", "invoices", "customers")

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = StripeOptions.parse(options, str(settings.sources_config or "sources file"))
        self.mapping = MappingOptions(
            customer_id_metadata_key=self.options.customer_id_metadata_key,
            contract_term_metadata_key=self.options.contract_term_metadata_key,
            plan_limit_metadata_key=self.options.plan_limit_metadata_key,
            tz=ZoneInfo(settings.timezone),
        )
        self._api: StripeApi | None = None
        self._products: dict[str, dict[str, Any]] = {}
        self._tiers: dict[str, list[dict[str, Any]]] = {}
        self._coupons: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"StripeConnector(base={self.settings.stripe_api_base!r})"

    @property
    def api(self) -> StripeApi:
        if self._api is None:
            key = resolve_secret(
                self.settings.stripe_api_key,
                self.settings.stripe_api_key_block,
                "the Stripe API key",
                "KIZUNA_STRIPE_API_KEY",
            )
            self._api = StripeApi(
                key,
                self.settings.stripe_api_base,
                max_retries=self.settings.connector_max_retries,
                timeout=self.settings.connector_timeout_seconds,
                page_size=self.options.page_size,
            )
        return self._api

    # -- the Connector interface ------------------------------------------------------------------------------

    def pull(self, table: Table, cursor: Cursor | None, sink: ChangeSink) -> PullOutcome:
        started = time.time()
        requests_before = self.api.requests
        if cursor is not None and cursor.get("v") != CURSOR_VERSION:
            log.info("stripe: %s: the stored cursor has another format; pulling everything", table.name)
            cursor = None
        if cursor is not None and started - float(cursor.get("checked_at", 0)) > STALE_AFTER_DAYS * 86400:
            days = int((started - float(cursor.get("checked_at", 0))) // 86400)
            log.warning(
                "stripe: %s: the last pull was %d days ago and Stripe keeps events for 30 days; pulling everything "
                "again as a snapshot (subscription history restarts from the current state, docs/sources.md)",
                table.name,
                days,
            )
            cursor = None
        try:
            if cursor is None:
                mark = newest_event_mark(self.api, started)
                state, snapshot = self._full(table.name, sink), True
            else:
                events, mark = events_since(self.api, cursor["events"], EVENT_TYPES[table.name])
                state, snapshot = self._changes(table.name, events, cursor, sink)
        except MappingError as exc:
            raise ConnectorError(f"stripe: {table.name}: {exc}") from None
        log.info(
            "stripe: %s: %s pull wrote %d records and %d deletions in %.1f s (%d requests)",
            table.name,
            "full" if snapshot else "incremental",
            sink.upserts,
            len(sink.deleted),
            time.time() - started,
            self.api.requests - requests_before,
        )
        return PullOutcome({"v": CURSOR_VERSION, "events": mark, "checked_at": started, **state}, snapshot)

    def _full(self, table: str, sink: ChangeSink) -> dict[str, Any]:
        if table == "subscriptions":
            return self._subscriptions(self._list_subscriptions({}), {}, {}, {}, sink, relisted=True)
        if table == "invoices":
            customers: dict[str, str] = {}
            for invoice in self._list_invoices({}):
                self._emit_invoice(invoice, customers, sink)
            return {"customers": customers}
        for customer in self.api.list_all("customers", "/v1/customers", {}):
            sink.upsert(customer_row(customer, self.mapping), f"customer {customer['id']}")
        return {}

    def _changes(
        self, table: str, events: list[Event], cursor: Cursor, sink: ChangeSink
    ) -> tuple[dict[str, Any], bool]:
        if table == "subscriptions":
            return self._subscription_changes(events, cursor, sink), False
        if table == "invoices":
            return self._invoice_changes(events, cursor, sink)
        self._customer_changes(events, sink)
        return {}, False

    def _day(self, epoch: int) -> date:
        day = local_date(epoch, self.mapping.tz)
        assert day is not None
        return day

    # -- subscriptions ---------------------------------------------------------------------------------------------

    def _list_subscriptions(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        query = {"status": "all", "expand": SUBSCRIPTION_EXPAND, **params}
        return self.api.list_all("subscriptions", "/v1/subscriptions", query)

    def _subscription_changes(self, events: list[Event], cursor: Cursor, sink: ChangeSink) -> dict[str, Any]:
        items: dict[str, Entry] = dict(cursor.get("items") or {})
        customers: dict[str, str] = dict(cursor.get("customers") or {})
        changed_on: dict[str, date] = {}
        revenue_on: dict[str, date] = {}
        relist_customers: set[str] = set()
        relist_all = False
        for event in events:
            if event.type.startswith("customer.subscription."):
                sub_id = str(event.obj.get("id"))
                changed_on[sub_id] = self._day(event.created)
                if event.type != "customer.subscription.updated" or REVENUE_ATTRIBUTES & set(event.previous):
                    revenue_on[sub_id] = self._day(event.created)
            elif event.type == "customer.updated" and "metadata" in event.previous:
                relist_customers.add(str(event.obj.get("id")))
            elif event.type in ("product.updated", "price.updated"):
                relist_all = True  # a renamed product or plan: every subscription's rows may change
        days = {sub_id: revenue_on.get(sub_id, day) for sub_id, day in changed_on.items()}
        if relist_all or len(days) + len(relist_customers) > self.options.refetch_limit:
            return self._subscriptions(self._list_subscriptions({}), items, customers, days, sink, relisted=True)
        subs: list[tuple[str, dict[str, Any] | None]] = []
        for sub_id in days:
            sub = self.api.retrieve(
                f"subscription {sub_id}",
                "/v1/subscriptions",
                sub_id,
                {"expand": [e.removeprefix("data.") for e in SUBSCRIPTION_EXPAND]},
            )
            subs.append((sub_id, sub))
        for customer in sorted(relist_customers):
            for sub in self._list_subscriptions({"customer": customer}):
                if sub["id"] not in days:
                    subs.append((sub["id"], sub))
        return self._subscriptions(subs, items, customers, days, sink, relisted=False)

    def _subscriptions(
        self,
        subs: Iterable[dict[str, Any] | tuple[str, dict[str, Any] | None]],
        items: dict[str, Entry],
        customers: dict[str, str],
        days: dict[str, date],
        sink: ChangeSink,
        *,
        relisted: bool,
    ) -> dict[str, Any]:
        """Advance each subscription's periods; after a complete listing, the unlisted ones are gone."""
        by_sub: dict[str, dict[str, Entry]] = {}
        for item_id, entry in items.items():
            by_sub.setdefault(str(entry["sub"]), {})[item_id] = entry
        today = self._day(int(time.time()))
        now = datetime.now(self.mapping.tz)
        lookups = Lookups(self._product, self._price_tiers, self._coupon)
        seen: set[str] = set()
        for pair in subs:
            sub_id, sub = pair if isinstance(pair, tuple) else (str(pair["id"]), pair)
            seen.add(sub_id)
            prior = by_sub.pop(sub_id, {})
            sv = None
            if sub is not None:
                stripe_customer = stripe_customer_id(sub.get("customer"))
                self._learn_customer(sub.get("customer"), customers)
                try:
                    sv = subscription_values(sub, lookups, self.mapping, now, customers.get(stripe_customer or ""))
                except MappingError as exc:
                    raise MappingError(f"subscription {sub_id}: {exc}") from None
            changes, memory = advance(sv, prior, days.get(sub_id, today), sub_id)
            for item_id in prior:
                items.pop(item_id, None)
            items.update(memory)
            for row, ref in changes.upserts:
                sink.upsert(row, ref)
            for key in changes.deletes:
                sink.delete(key)
        if relisted:
            for sub_id, prior in by_sub.items():  # remembered but no longer listed: deleted in Stripe
                changes, _ = advance(None, prior, today, sub_id)
                for item_id in prior:
                    items.pop(item_id, None)
                for key in changes.deletes:
                    sink.delete(key)
        return {"items": items, "customers": customers}

    def _learn_customer(self, customer: Any, customers: dict[str, str]) -> None:
        """Remember Stripe id -> kizuna id, so rows of a customer deleted later keep their customer_id."""
        kizuna_id = customer_id_of(customer, self.mapping.customer_id_metadata_key)
        stripe_id = stripe_customer_id(customer)
        if kizuna_id is not None and stripe_id is not None and not isinstance(customer, str):
            if kizuna_id != stripe_id:
                customers[stripe_id] = kizuna_id
            else:
                customers.pop(stripe_id, None)

    def _product(self, product_id: str) -> dict[str, Any]:
        if product_id not in self._products:
            found = self.api.retrieve(f"product {product_id}", "/v1/products", product_id, {})
            self._products[product_id] = found or {"id": product_id}
        return self._products[product_id]

    def _price_tiers(self, price_id: str) -> list[dict[str, Any]]:
        if price_id not in self._tiers:
            price = self.api.retrieve(f"price {price_id}", "/v1/prices", price_id, {"expand": ["tiers"]})
            self._tiers[price_id] = list((price or {}).get("tiers") or [])
        return self._tiers[price_id]

    def _coupon(self, discount: Mapping[str, Any]) -> dict[str, Any]:
        """A discount's coupon, by id. A coupon's terms never change, so each is read once per pull."""
        coupon_id = str((discount.get("source") or {}).get("coupon") or discount.get("coupon"))
        if coupon_id not in self._coupons:
            found = self.api.retrieve(f"coupon {coupon_id}", "/v1/coupons", coupon_id, {})
            self._coupons[coupon_id] = found or self._applied_coupon(discount, coupon_id)
        return self._coupons[coupon_id]

    def _applied_coupon(self, discount: Mapping[str, Any], coupon_id: str) -> dict[str, Any]:
        """A deleted coupon (404) still discounts whoever applied it (Stripe: deleting a coupon does not affect
        customers who already applied it): read it from the discount itself, expanded on its item."""
        item, sub = discount.get("subscription_item"), discount.get("subscription")
        owner, what, path = (
            (item, "subscription item", "/v1/subscription_items")
            if item
            else (sub, "subscription", "/v1/subscriptions")
        )
        obj = None
        if owner:
            obj = self.api.retrieve(f"{what} {owner}", path, str(owner), {"expand": ["discounts.source.coupon"]})
        for applied in (obj or {}).get("discounts") or []:
            if isinstance(applied, dict) and applied.get("id") == discount.get("id"):
                coupon = (applied.get("source") or {}).get("coupon")
                if isinstance(coupon, dict):
                    return coupon
        raise ConnectorError(
            f"stripe: coupon {coupon_id} (discount {discount.get('id')} on {what} {owner}) is deleted "
            "and Stripe did not show it on the discount: its rate is unknown, so the pull stops rather than guess"
        )

    # -- invoices ------------------------------------------------------------------------------------------------------

    def _list_invoices(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return self.api.list_all("invoices", "/v1/invoices", {"expand": ["data.customer"], **params})

    def _emit_invoice(self, invoice: dict[str, Any], customers: dict[str, str], sink: ChangeSink) -> None:
        self._learn_customer(invoice.get("customer"), customers)
        known = customers.get(stripe_customer_id(invoice.get("customer")) or "")
        row = invoice_row(invoice, self.mapping, known)
        if row is not None:
            sink.upsert(row, f"invoice {invoice['id']}")

    def _invoice_changes(self, events: list[Event], cursor: Cursor, sink: ChangeSink) -> tuple[dict[str, Any], bool]:
        customers: dict[str, str] = dict(cursor.get("customers") or {})
        invoice_ids: list[str] = []
        relist_customers: set[str] = set()
        for event in events:
            if event.type.startswith("invoice."):
                invoice_ids.append(str(event.obj.get("id")))
            elif event.type.startswith("credit_note.") and event.obj.get("invoice"):
                invoice = event.obj["invoice"]
                invoice_ids.append(str(invoice if isinstance(invoice, str) else invoice.get("id")))
            elif event.type == "customer.updated" and "metadata" in event.previous:
                relist_customers.add(str(event.obj.get("id")))
        unique = list(dict.fromkeys(invoice_ids))
        if len(unique) + len(relist_customers) > self.options.refetch_limit:
            for invoice in self._list_invoices({}):  # a complete listing: a snapshot
                self._emit_invoice(invoice, customers, sink)
            return {"customers": customers}, True
        for invoice_id in unique:
            invoice = self.api.retrieve(
                f"invoice {invoice_id}",
                "/v1/invoices",
                invoice_id,
                {"expand": ["customer"]},
            )
            if invoice is None:
                sink.delete(invoice_id)  # a deleted draft
            else:
                self._emit_invoice(invoice, customers, sink)
        for customer in sorted(relist_customers):
            for invoice in self._list_invoices({"customer": customer}):
                self._emit_invoice(invoice, customers, sink)
        return {"customers": customers}, False

    # -- customers -----------------------------------------------------------------------------------------------------

    def _customer_changes(self, events: list[Event], sink: ChangeSink) -> None:
        key = self.mapping.customer_id_metadata_key
        latest: dict[str, Event] = {}
        for event in events:
            latest[str(event.obj.get("id"))] = event
            if event.type == "customer.updated" and "metadata" in event.previous:
                metadata = {**(event.obj.get("metadata") or {}), **(event.previous["metadata"] or {})}
                before = customer_id_of({**event.obj, "metadata": metadata}, key)
                if before is not None and before != customer_id_of(event.obj, key):
                    sink.delete(before)  # the customer now answers to another kizuna id
        for stripe_id, event in latest.items():
            # the event keeps the customer as it was, metadata included: the key to delete
            was = customer_id_of({**event.obj, "deleted": None}, key) or stripe_id
            if event.type == "customer.deleted":
                sink.delete(was)
                continue
            customer = self.api.retrieve(f"customer {stripe_id}", "/v1/customers", stripe_id, {})
            if customer is None or customer.get("deleted"):
                sink.delete(was)
            else:
                sink.upsert(customer_row(customer, self.mapping), f"customer {stripe_id}")
