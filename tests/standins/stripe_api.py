"""A Stripe API stand-in on 127.0.0.1: customers, subscriptions, invoices, events, products, prices, coupons.

Objects carry every field of Stripe's published example of their kind (stripe_objects.json, from
stripe/openapi's fixtures3.json), so the connector reads payloads of the real size and shape. Speaks what the
connector reads, as Stripe does: GET list endpoints with form-encoded query parameters
(`limit` 1-100, `starting_after`, `has_more`, `status=all`, `customer`, `created[gte]`, `types[n]`,
`expand[n]` at most four levels deep, e.g. a discount's `source.coupon`, which still shows a deleted coupon),
retrieve endpoints (a deleted coupon answers 404; `/v1/subscription_items/{id}` too), newest-first ordering, Bearer or basic auth
with the key, error bodies `{"error": {...}}` with Request-Id headers. It is stateful: the test creates,
updates, cancels and deletes objects between pulls (`StripeStandin.state`), and every change records an
event with the object's snapshot and `previous_attributes` (events older than 30 days are not listed).
Faults on demand: `fail(kind, path, page, times)` with kind "429" (Retry-After), "500" or "drop" (the
connection closes without an answer). `seed_from_demo(state, demo_dir)` loads `kizuna demo-data` CSVs as
Stripe objects whose pull gives back the demo's subscription and invoice rows. As a script
(``python -m tests.standins.stripe_api --subscriptions 10000`` or ``--demo-dir DIR``) it prints its base
address and serves until stopped (bench/connectors/bench_stripe.py).
"""

from __future__ import annotations

import argparse
import base64
import copy
import csv
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest

from tests.standins.serving import ServedInThread, StandinHandler, StandinServer

API_VERSION = "2026-10-28.endive"
EVENT_RETENTION_SECONDS = 30 * 86400
OBJECTS = json.loads((Path(__file__).with_name("stripe_objects.json")).read_text(encoding="utf-8"))
ZERO_DECIMAL = {"JPY", "KRW", "VND", "CLP", "UGX"}
FAULTS = ("429", "500", "drop")


def shape(kind: str, **fields: Any) -> dict[str, Any]:
    """An object with every field of Stripe's published example of `kind` (stripe_objects.json), `fields` set:
    so the connector reads payloads of the real size and shape, fields it ignores included."""
    obj = copy.deepcopy(OBJECTS[kind])
    obj.update(fields)
    return obj


@dataclass
class Fault:
    kind: str  # "429", "500" or "drop"
    path: str  # e.g. "/v1/subscriptions"
    page: int | None = None  # list page number (1 = first); None: any request to the path
    times: int = 1
    retry_after: str | None = "0"  # the 429's Retry-After header (None: not sent)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, Any]
    authorization: str
    stripe_version: str | None
    answer: str


@dataclass
class StripeState:
    """The account's objects (newest last) and what the stand-in saw and answers."""

    api_key: str = "sk_test_kizunaStandinKey0123456789"
    clock: float | None = None  # epoch seconds of "now" for new objects and events; None: real time
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    coupons: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    record_requests: bool = True  # off for benchmarks
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- time and ids -------------------------------------------------------------------------------------------

    def now(self) -> int:
        return int(self.clock if self.clock is not None else time.time())

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    def fail(
        self, kind: str, path: str, page: int | None = None, times: int = 1, retry_after: str | None = "0"
    ) -> None:
        assert kind in FAULTS, kind
        with self.lock:
            self.faults.append(Fault(kind, path, page, times, retry_after))

    def answered(self, answer: str, path: str | None = None) -> int:
        return sum(1 for r in self.requests if r.answer == answer and (path is None or r.path == path))

    # -- events ------------------------------------------------------------------------------------------------

    def _event(self, kind: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> None:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        self.events.append(
            shape(
                "event",
                id=self.new_id("evt"),
                type=kind,
                created=self.now(),
                api_version=API_VERSION,
                livemode=False,
                data=data,
                request={"id": f"req_{len(self.events) + 1:014d}", "idempotency_key": None},
            )
        )

    # -- catalogue ----------------------------------------------------------------------------------------------

    def add_product(self, name: str, *, id: str | None = None, metadata: dict[str, str] | None = None) -> str:
        with self.lock:
            product = shape("product", id=id or self.new_id("prod"), name=name, active=True, default_price=None)
            product.update(created=self.now(), updated=self.now(), metadata=dict(metadata or {}), livemode=False)
            self.products[product["id"]] = product
            return str(product["id"])

    def rename_product(self, product_id: str, name: str) -> None:
        with self.lock:
            product = self.products[product_id]
            previous = {"name": product["name"]}
            product["name"] = name
            self._event("product.updated", product, previous)

    def add_price(
        self,
        product: str,
        *,
        currency: str = "jpy",
        unit_amount: int | None = None,
        unit_amount_decimal: str | None = None,
        tiers: list[dict[str, Any]] | None = None,
        tiers_mode: str = "volume",
        interval: str = "month",
        interval_count: int = 1,
        usage_type: str = "licensed",
        nickname: str | None = None,
        id: str | None = None,
        metadata: dict[str, str] | None = None,
        transform_quantity: dict[str, Any] | None = None,
    ) -> str:
        with self.lock:
            price_id = id or self.new_id("price")
            decimal = unit_amount_decimal if unit_amount_decimal is not None else unit_amount
            self.prices[price_id] = {
                **shape("price"),
                "id": price_id,
                "object": "price",
                "active": True,
                "billing_scheme": "tiered" if tiers else "per_unit",
                "created": self.now(),
                "currency": currency,
                "livemode": False,
                "lookup_key": None,
                "metadata": dict(metadata or {}),
                "nickname": nickname,
                "product": product,
                "recurring": {
                    "interval": interval,
                    "interval_count": interval_count,
                    "meter": None,
                    "trial_period_days": None,
                    "usage_type": usage_type,
                },
                "tax_behavior": "exclusive",
                "tiers": [dict(t) for t in tiers] if tiers else None,  # only rendered when expanded
                "tiers_mode": tiers_mode if tiers else None,
                "transform_quantity": transform_quantity,
                "type": "recurring",
                "unit_amount": None if tiers or decimal is None or "." in str(decimal) else int(decimal),
                "unit_amount_decimal": None if tiers or decimal is None else str(decimal),
            }
            return price_id

    def add_coupon(
        self,
        *,
        percent_off: float | None = None,
        amount_off: int | None = None,
        currency: str | None = None,
        duration: str = "forever",
        id: str | None = None,
    ) -> str:
        with self.lock:
            coupon_id = id or self.new_id("coupon")
            self.coupons[coupon_id] = {
                **shape("coupon"),
                "name": f"{percent_off}% off" if percent_off is not None else f"{amount_off} off",
                "duration_in_months": 3 if duration == "repeating" else None,
                "metadata": {},
                "livemode": False,
                "id": coupon_id,
                "object": "coupon",
                "amount_off": amount_off,
                "currency": currency,
                "duration": duration,
                "percent_off": percent_off,
                "valid": True,
                "created": self.now(),
            }
            return coupon_id

    def delete_coupon(self, coupon_id: str) -> None:
        """Deleted coupons answer 404, but discounts already applied keep them (and show them when expanded)."""
        with self.lock:
            self.coupons[coupon_id]["deleted"] = True
            self._event("coupon.deleted", self.coupons[coupon_id])

    def discount_item(self, sub_id: str, item_id: str, coupon: str) -> None:
        """Apply a coupon to one item of a subscription (an item-level discount)."""
        with self.lock:
            sub = self.subscriptions[sub_id]
            previous = {"items": copy.deepcopy(sub["items"])}
            item = next(i for i in sub["items"]["data"] if i["id"] == item_id)
            item["discounts"].append(self.discount(coupon, subscription=sub_id, item=item_id))
            self._event("customer.subscription.updated", sub, previous)

    def discount(self, coupon: str, *, subscription: str | None = None, item: str | None = None) -> dict[str, Any]:
        return shape(
            "discount",
            id=self.new_id("di"),
            source={"type": "coupon", "coupon": coupon},
            start=self.now(),
            end=None,
            customer=self.subscriptions[subscription]["customer"] if subscription in self.subscriptions else None,
            subscription=subscription,
            subscription_item=item,
        )

    # -- customers ----------------------------------------------------------------------------------------------

    def add_customer(
        self,
        name: str,
        *,
        id: str | None = None,
        email: str | None = None,
        metadata: dict[str, str] | None = None,
        address: dict[str, str] | None = None,
        created: int | None = None,
    ) -> str:
        with self.lock:
            customer = {
                **shape("customer"),
                "id": id or self.new_id("cus"),
                "object": "customer",
                "name": name,
                "email": email,
                "address": address,
                "created": created or self.now(),
                "metadata": dict(metadata or {}),
                "livemode": False,
            }
            self.customers[customer["id"]] = customer
            self._event("customer.created", customer)
            return str(customer["id"])

    def update_customer(self, customer_id: str, **changes: Any) -> None:
        with self.lock:
            customer = self.customers[customer_id]
            previous = _previous(customer, changes)
            customer.update(copy.deepcopy(changes))
            self._event("customer.updated", customer, previous)

    def delete_customer(self, customer_id: str) -> None:
        """Stripe deletes the customer and cancels its subscriptions at once."""
        with self.lock:
            customer = self.customers[customer_id]
            for sub in self.subscriptions.values():
                if sub["customer"] == customer_id and sub["status"] not in ("canceled", "incomplete_expired"):
                    self.cancel_subscription(sub["id"], reason="cancellation_requested")
            customer["deleted"] = True
            self._event("customer.deleted", customer)

    # -- subscriptions -----------------------------------------------------------------------------------------

    def add_subscription(
        self,
        customer: str,
        items: list[tuple[str, int]],
        *,
        id: str | None = None,
        item_ids: list[str] | None = None,
        status: str = "active",
        start: int | None = None,
        trial: tuple[int, int] | None = None,
        cancel_at: int | None = None,
        metadata: dict[str, str] | None = None,
        discounts: list[str] | None = None,
    ) -> str:
        """`items`: (price id, quantity) pairs; `discounts`: coupon ids applied to the whole subscription."""
        with self.lock:
            sub_id = id or self.new_id("sub")
            start = start if start is not None else self.now()
            first_price = self.prices[items[0][0]]
            sub = {
                **shape("subscription"),
                "id": sub_id,
                "object": "subscription",
                "billing_cycle_anchor": start,
                "customer": customer,
                "status": status,
                "created": start,
                "start_date": start,
                "currency": first_price["currency"],
                "cancel_at": cancel_at,
                "cancel_at_period_end": False,
                "canceled_at": None,
                "ended_at": None,
                "cancellation_details": {"comment": None, "feedback": None, "reason": None},
                "pause_collection": None,
                "trial_start": trial[0] if trial else None,
                "trial_end": trial[1] if trial else None,
                "metadata": dict(metadata or {}),
                "discounts": [self.discount(c, subscription=sub_id) for c in discounts or []],
                "livemode": False,
                "items": {
                    "object": "list",
                    "data": [],
                    "has_more": False,
                    "url": f"/v1/subscription_items?subscription={sub_id}",
                },
            }
            for discount in sub["discounts"]:
                discount["customer"] = customer
            for n, (price_id, quantity) in enumerate(items):
                item_id = item_ids[n] if item_ids else None
                sub["items"]["data"].append(self._item(sub_id, price_id, quantity, start, item_id))
            self.subscriptions[sub_id] = sub
            self._event("customer.subscription.created", sub)
            return sub_id

    def _item(self, sub_id: str, price_id: str, quantity: int, created: int, item_id: str | None) -> dict[str, Any]:
        return {
            **shape("subscription_item"),
            "id": item_id or self.new_id("si"),
            "object": "subscription_item",
            "created": created,
            "current_period_start": created,
            "current_period_end": created + 30 * 86400,
            "discounts": [],
            "metadata": {},
            "price": price_id,  # rendered as the full price object (without tiers)
            "quantity": quantity,
            "subscription": sub_id,
        }

    def update_subscription(self, sub_id: str, **changes: Any) -> None:
        """Top-level changes (status, pause_collection, metadata, cancel_at, trial_end, ...)."""
        with self.lock:
            sub = self.subscriptions[sub_id]
            previous = _previous(sub, changes)
            sub.update(copy.deepcopy(changes))
            self._event("customer.subscription.updated", sub, previous)

    def change_item(
        self,
        sub_id: str,
        item_id: str,
        *,
        price: str | None = None,
        quantity: int | None = None,
        remove: bool = False,
    ) -> None:
        """A plan change on one item: new price and/or quantity (or the item taken off)."""
        with self.lock:
            sub = self.subscriptions[sub_id]
            previous = {"items": copy.deepcopy(sub["items"])}
            data = sub["items"]["data"]
            item = next(i for i in data if i["id"] == item_id)
            if remove:
                data.remove(item)
            if price is not None:
                item["price"] = price
            if quantity is not None:
                item["quantity"] = quantity
            self._event("customer.subscription.updated", sub, previous)

    def add_item(self, sub_id: str, price_id: str, quantity: int, item_id: str | None = None) -> str:
        with self.lock:
            sub = self.subscriptions[sub_id]
            previous = {"items": copy.deepcopy(sub["items"])}
            item = self._item(sub_id, price_id, quantity, self.now(), item_id)
            sub["items"]["data"].append(item)
            self._event("customer.subscription.updated", sub, previous)
            return str(item["id"])

    def cancel_subscription(
        self,
        sub_id: str,
        *,
        at: int | None = None,
        reason: str = "cancellation_requested",
        feedback: str | None = None,
        comment: str | None = None,
    ) -> None:
        """Ends the subscription now (or at `at`, in the past or now)."""
        with self.lock:
            sub = self.subscriptions[sub_id]
            when = at if at is not None else self.now()
            sub.update(status="canceled", canceled_at=when, ended_at=when)
            sub["cancellation_details"] = {"comment": comment, "feedback": feedback, "reason": reason}
            self._event("customer.subscription.deleted", sub)

    def forget_subscription(self, sub_id: str) -> None:
        """The subscription is gone from the account (as after a test-data purge): retrieving it answers 404."""
        with self.lock:
            sub = self.subscriptions.pop(sub_id)
            self._event("customer.subscription.deleted", sub)

    def add_invoice(
        self,
        customer: str,
        *,
        amount: int,
        tax: int = 0,
        currency: str = "jpy",
        status: str = "paid",
        subscription: str | None = None,
        item: str | None = None,
        period: tuple[int, int] | None = None,
        issued: int | None = None,
        id: str | None = None,
        credited: int = 0,
    ) -> str:
        with self.lock:
            invoice_id = id or self.new_id("in")
            issued = issued if issued is not None else self.now()
            lines = []
            if item is not None:
                start, end = period or (issued, issued + 30 * 86400)
                lines.append(
                    {
                        **shape("line_item"),
                        "invoice": invoice_id,
                        "subtotal": amount,
                        "id": self.new_id("il"),
                        "object": "line_item",
                        "amount": amount,
                        "currency": currency,
                        "period": {"start": start, "end": end},
                        "parent": {
                            "type": "subscription_item_details",
                            "subscription_item_details": {
                                "subscription": subscription,
                                "subscription_item": item,
                                "proration": False,
                                "invoice_item": None,
                            },
                            "invoice_item_details": None,
                        },
                        "quantity": 1,
                    }
                )
            invoice = {
                **shape("invoice"),
                "subscription": None,
                "subtotal_excluding_tax": amount,
                "amount_remaining": 0 if status == "paid" else amount + tax,
                "id": invoice_id,
                "object": "invoice",
                "customer": customer,
                "currency": currency,
                "status": status,
                "created": issued,
                "period_start": issued,
                "period_end": issued,
                "subtotal": amount,
                "total_excluding_tax": amount,
                "total": amount + tax,
                "total_taxes": [{"amount": tax, "tax_behavior": "exclusive", "taxability_reason": "standard_rated"}]
                if tax
                else [],
                "amount_due": amount + tax,
                "amount_paid": amount + tax if status == "paid" else 0,
                "post_payment_credit_notes_amount": credited,
                "pre_payment_credit_notes_amount": 0,
                "status_transitions": {
                    "finalized_at": None if status == "draft" else issued,
                    "paid_at": issued if status == "paid" else None,
                    "voided_at": None,
                    "marked_uncollectible_at": None,
                },
                "parent": {"type": "subscription_details", "subscription_details": {"subscription": subscription}}
                if subscription
                else None,
                "lines": {
                    "object": "list",
                    "data": lines,
                    "has_more": False,
                    "url": f"/v1/invoices/{invoice_id}/lines",
                },
                "livemode": False,
            }
            self.invoices[invoice_id] = invoice
            self._event("invoice.created", invoice)
            return invoice_id

    def update_invoice(self, invoice_id: str, event: str, **changes: Any) -> None:
        """E.g. update_invoice(id, "invoice.paid", status="paid")."""
        with self.lock:
            invoice = self.invoices[invoice_id]
            previous = _previous(invoice, changes)
            invoice.update(copy.deepcopy(changes))
            self._event(event, invoice, previous)

    def delete_invoice(self, invoice_id: str) -> None:
        with self.lock:
            invoice = self.invoices.pop(invoice_id)
            assert invoice["status"] == "draft", "Stripe deletes only draft invoices"
            self._event("invoice.deleted", invoice)

    # -- rendering --------------------------------------------------------------------------------------------

    def render(self, kind: str, obj: dict[str, Any], expand: set[str]) -> dict[str, Any]:
        """An object as the API answers it; `expand` holds paths relative to the object."""
        out = copy.deepcopy(obj)
        expand_customer = "customer" in expand and isinstance(out.get("customer"), str)
        if kind in ("subscription", "invoice") and expand_customer:
            customer = self.customers.get(out["customer"])
            if customer is not None and customer.get("deleted"):
                out["customer"] = {"id": customer["id"], "object": "customer", "deleted": True}
            elif customer is not None:
                out["customer"] = copy.deepcopy(customer)
        if kind == "subscription":
            out["discounts"] = self._render_discounts(out["discounts"], "discounts", expand)
            for item in out["items"]["data"]:
                self._render_item(item, expand, "items.data.")
        if kind == "subscription_item":
            self._render_item(out, expand, "")
        if kind == "price" and "tiers" not in expand:
            out.pop("tiers", None)
        return out

    def _render_item(self, item: dict[str, Any], expand: set[str], prefix: str) -> None:
        price = copy.deepcopy(self.prices[item["price"]])
        price["tiers"] = None
        item["price"] = price
        item["plan"] = _plan(price)
        item["discounts"] = self._render_discounts(item["discounts"], f"{prefix}discounts", expand)

    def _render_discounts(self, discounts: list[dict[str, Any]], path: str, expand: set[str]) -> list[Any]:
        """Discount ids, or (expanded) discount objects whose coupon is an id, or (expanded further) the coupon
        as it was applied: a deleted coupon still shows there."""
        if path not in expand and f"{path}.source.coupon" not in expand:
            return [d["id"] for d in discounts]
        out = copy.deepcopy(discounts)
        if f"{path}.source.coupon" in expand:
            for d in out:
                coupon = {k: v for k, v in self.coupons[d["source"]["coupon"]].items() if k != "deleted"}
                d["source"]["coupon"] = copy.deepcopy(coupon)
        return out


def _plan(price: dict[str, Any]) -> dict[str, Any]:
    """The legacy plan Stripe still renders beside an item's price, made from that price."""
    recurring = price.get("recurring") or {}
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": price["livemode"],
        "metadata": price["metadata"],
        "meter": recurring.get("meter"),
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": price["tiers_mode"],
        "transform_usage": price["transform_quantity"],
        "trial_period_days": recurring.get("trial_period_days"),
        "usage_type": recurring.get("usage_type"),
    }


def _previous(obj: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Stripe's previous_attributes: the old values of what changed (only changed keys of a hash)."""
    previous: dict[str, Any] = {}
    for key, value in changes.items():
        old = obj.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            changed = {k: old.get(k) for k in value if old.get(k) != value[k]}
            if changed:
                previous[key] = changed
        elif old != value:
            previous[key] = copy.deepcopy(old)
    return previous


# -- the HTTP side --------------------------------------------------------------------------------------------------


def parse_query(query: str) -> dict[str, Any]:
    """Stripe's form encoding: `a[b]=1` nests, `a[0]=x` and `a[]=x` make lists."""
    out: dict[str, Any] = {}
    for raw_key, value in parse_qsl(query, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+|\[\]", raw_key)
        node: Any = out
        for n, part in enumerate(parts):
            last = n == len(parts) - 1
            nxt = None if last else parts[n + 1]
            listy = nxt is not None and (nxt == "[]" or nxt.isdigit())
            if isinstance(node, list):
                if last:
                    node.append(value)
                    break
                continue
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, [] if listy else {})
    return out


class _Handler(StandinHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        query = parse_query(url.query)
        path = url.path.rstrip("/")
        record = Request(
            "GET", path, query, self.headers.get("Authorization", ""), self.headers.get("Stripe-Version"), ""
        )
        if state.record_requests:
            with state.lock:
                state.requests.append(record)
        if not self._authorised():
            record.answer = "401"
            masked = f"{self._key_seen()[:8]}{'*' * 8}{self._key_seen()[-4:]}" if self._key_seen() else ""
            self._error(401, "invalid_request_error", f"Invalid API Key provided: {masked}")
            return
        try:
            status, body, page = self._route(path, query)
        except _ApiError as exc:
            record.answer = str(exc.status)
            self._error(exc.status, "invalid_request_error", exc.message, exc.code)
            return
        fault = self._fault(path, page)
        if fault is not None:
            record.answer = fault.kind
            if fault.kind == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault.kind == "429":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                self._error(
                    429, "invalid_request_error", "Too many requests hit the API too quickly.", "rate_limit", headers
                )
            else:
                self._error(500, "api_error", "Sorry, something went wrong.")
            return
        record.answer = str(status)
        self._send(status, body)

    def _key_seen(self) -> str:
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header[7:]
        if header.startswith("Basic "):
            try:
                return base64.b64decode(header[6:]).decode().split(":", 1)[0]
            except ValueError:
                return ""
        return ""

    def _authorised(self) -> bool:
        return self._key_seen() == self.server.state.api_key

    def _fault(self, path: str, page: int | None) -> Fault | None:
        state = self.server.state
        with state.lock:
            for fault in state.faults:
                if fault.path == path and (fault.page is None or fault.page == page) and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _route(self, path: str, query: dict[str, Any]) -> tuple[int, dict[str, Any], int | None]:
        state = self.server.state
        expand = _expansions(query)
        parts = path.split("/")[2:]  # after /v1
        collections = {
            "customers": ("customer", state.customers),
            "subscriptions": ("subscription", state.subscriptions),
            "invoices": ("invoice", state.invoices),
            "products": ("product", state.products),
            "prices": ("price", state.prices),
            "coupons": ("coupon", state.coupons),
        }
        with state.lock:
            if parts == ["events"]:
                return self._list(_events_matching(state, query), query, "/v1/events", lambda e: e)
            if len(parts) == 1 and parts[0] in ("customers", "subscriptions", "invoices"):
                kind, objects = collections[parts[0]]
                nested = {e.removeprefix("data.") for e in expand if e.startswith("data.")}
                if len(expand) != len(nested):
                    raise _ApiError(400, "expand paths of a list start with data.")
                listed = [o for o in objects.values() if _listed(kind, o, query)]
                return self._list(listed, query, f"/v1/{parts[0]}", lambda o: state.render(kind, o, nested))
            if len(parts) == 2 and parts[0] == "subscription_items":
                found = [i for sub in state.subscriptions.values() for i in sub["items"]["data"] if i["id"] == parts[1]]
                if not found:
                    raise _ApiError(404, f"No such subscription_item: '{parts[1]}'", "resource_missing")
                return 200, state.render("subscription_item", found[0], expand), None
            if len(parts) == 2 and parts[0] in collections:
                kind, objects = collections[parts[0]]
                obj = objects.get(parts[1])
                if obj is None:
                    raise _ApiError(404, f"No such {kind}: '{parts[1]}'", "resource_missing")
                if kind == "coupon" and obj.get("deleted"):
                    raise _ApiError(404, f"No such coupon: '{parts[1]}'", "resource_missing")
                if kind == "customer" and obj.get("deleted"):
                    return 200, {"id": obj["id"], "object": "customer", "deleted": True}, None
                return 200, state.render(kind, obj, expand), None
        raise _ApiError(404, f"Unrecognized request URL (GET: {path})")

    def _list(
        self, objects: list[dict[str, Any]], query: dict[str, Any], url: str, render: Any
    ) -> tuple[int, dict[str, Any], int]:
        try:
            limit = int(query.get("limit", 10))
        except ValueError:
            raise _ApiError(400, "Invalid integer: limit") from None
        if not 1 <= limit <= 100:
            raise _ApiError(
                400,
                "This value must be less than or equal to 100 (it currently is {limit}).",
                "parameter_invalid_integer",
            )
        ordered = sorted(objects, key=lambda o: (o.get("created", 0), o["id"]), reverse=True)  # newest first
        start = 0
        after = query.get("starting_after")
        if after:
            ids = [o["id"] for o in ordered]
            if after not in ids:
                raise _ApiError(400, f"No such object: '{after}'", "resource_missing")
            start = ids.index(after) + 1
        chunk = ordered[start : start + limit]
        page = start // limit + 1
        body = {
            "object": "list",
            "url": url,
            "has_more": start + limit < len(ordered),
            "data": [render(o) for o in chunk],
        }
        return 200, body, page

    def _error(
        self, status: int, kind: str, message: str, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        error: dict[str, Any] = {"type": kind, "message": message}
        if code:
            error["code"] = code
        self._send(status, {"error": error}, headers)

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        standard = {
            "Request-Id": f"req_{time.monotonic_ns()}",
            "Stripe-Version": self.headers.get("Stripe-Version") or API_VERSION,
        }
        self.send_body(status, json.dumps(body).encode(), "application/json", {**standard, **(headers or {})})


class _ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _expansions(query: dict[str, Any]) -> set[str]:
    raw = query.get("expand") or []
    paths = set(raw if isinstance(raw, list) else [raw])
    for p in paths:
        if p.count(".") >= 4:
            raise _ApiError(400, f"You cannot expand more than 4 levels of a property. Property: {p}")
    return paths


def _listed(kind: str, obj: dict[str, Any], query: dict[str, Any]) -> bool:
    if kind == "customer" and obj.get("deleted"):
        return False
    if query.get("customer") and obj.get("customer") != query["customer"]:
        return False
    if kind == "subscription":
        wanted = query.get("status")
        if wanted is None:
            return obj["status"] not in ("canceled", "incomplete_expired")
        return wanted == "all" or obj["status"] == wanted
    return True


def _events_matching(state: StripeState, query: dict[str, Any]) -> list[dict[str, Any]]:
    oldest = state.now() - EVENT_RETENTION_SECONDS
    created = query.get("created") or {}
    types = query.get("types") or ([query["type"]] if query.get("type") else [])
    if len(types) > 20:
        raise _ApiError(400, "types: at most 20")
    out = []
    for event in state.events:
        if event["created"] < oldest:
            continue
        if isinstance(created, dict):
            if "gte" in created and event["created"] < int(created["gte"]):
                continue
            if "gt" in created and event["created"] <= int(created["gt"]):
                continue
        if types and event["type"] not in types:
            continue
        out.append(event)
    return out


class _Server(StandinServer):
    state: StripeState


class StripeStandin(ServedInThread):
    """Start with ``with StripeStandin() as stripe:``; ``stripe.base`` is the API base for settings.stripe_api_base."""

    def __init__(self, state: StripeState | None = None) -> None:
        self.state = state or StripeState()
        super().__init__(_Server(0, _Handler, self.state), "stripe-standin")

    @property
    def base(self) -> str:
        return self.url


@pytest.fixture
def stripe_standin() -> Iterator[StripeStandin]:
    with StripeStandin() as standin:
        yield standin


# -- demo data as Stripe objects --------------------------------------------------------------------------------------


def _epoch(day: date, tz: ZoneInfo, hour: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=tz).timestamp())


def _minor(text: str, currency: str) -> int:
    value = Decimal(text)
    return int(value if currency.upper() in ZERO_DECIMAL else value * 100)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def seed_from_demo(state: StripeState, demo_dir: Path, timezone: str = "Asia/Tokyo") -> dict[str, int]:
    """Load `kizuna demo-data` subscriptions and invoices (and customer names) as Stripe objects.

    Customers carry the demo id in metadata.kizuna_customer_id; each subscription row becomes a one-item
    subscription whose item id is the demo subscription_id (Stripe ids are opaque), so a pull gives back the
    demo's keys. Monthly rows bill mrr per month, yearly rows amount per year: per unit when the amount
    divides by the quantity, else as one flat volume tier. Paused rows are paid subscriptions with
    collection paused; trialing rows are in a 14-day trial; canceled rows ended on end_date with the
    reason as the customer's comment; refunded invoices are paid and credited in full.
    """
    tz = ZoneInfo(timezone)
    names = {}
    if (demo_dir / "customers.csv").exists():
        names = {r["customer_id"]: r["name"] for r in _rows(demo_dir / "customers.csv")}
    subs = _rows(demo_dir / "subscriptions.csv")
    invoices = _rows(demo_dir / "invoices.csv") if (demo_dir / "invoices.csv").exists() else []
    with state.lock:
        customer_of: dict[str, str] = {}
        for kizuna_id in sorted({r["customer_id"] for r in subs} | {r["customer_id"] for r in invoices}):
            customer_of[kizuna_id] = state.add_customer(
                names.get(kizuna_id, kizuna_id), id=f"cus_{kizuna_id}", metadata={"kizuna_customer_id": kizuna_id}
            )
        products: dict[str, str] = {}
        prices: dict[tuple[Any, ...], str] = {}
        for row in subs:
            currency = (row["currency"] or "JPY").lower()
            product = products.get(row["product"]) or state.add_product(row["product"])
            products[row["product"]] = product
            period = int(row["billing_period_months"] or 1)
            total = _minor(row["mrr"], currency) * period if row["mrr"] else _minor(row["amount"], currency)
            quantity = int(row["quantity"] or 1)
            per_unit = total % quantity == 0
            key = (product, row["plan"], currency, period, per_unit, total // quantity if per_unit else total)
            if key not in prices:
                interval = {"interval": "year"} if period == 12 else {"interval": "month", "interval_count": period}
                if per_unit:
                    prices[key] = state.add_price(
                        product,
                        currency=currency,
                        unit_amount=total // quantity,
                        nickname=row["plan"] or None,
                        **interval,
                    )
                else:
                    tiers = [
                        {
                            "up_to": None,
                            "flat_amount": total,
                            "flat_amount_decimal": str(total),
                            "unit_amount": 0,
                            "unit_amount_decimal": "0",
                        }
                    ]
                    prices[key] = state.add_price(
                        product, currency=currency, tiers=tiers, nickname=row["plan"] or None, **interval
                    )
            start = _epoch(date.fromisoformat(row["start_date"]), tz)
            metadata = {"contract_term_months": row["contract_term_months"]} if row["contract_term_months"] else {}
            if row["plan_limit"]:
                metadata["plan_limit"] = row["plan_limit"]
            end = _epoch(date.fromisoformat(row["end_date"]), tz) if row["end_date"] else None
            status = {"paused": "active"}.get(row["status"], row["status"] or "active")
            trial = (start, start + 14 * 86400) if status == "trialing" else None
            sub_id = state.add_subscription(
                customer_of[row["customer_id"]],
                [(prices[key], quantity)],
                id=f"sub_{row['subscription_id']}",
                item_ids=[row["subscription_id"]],
                status=status,
                start=start,
                trial=trial,
                cancel_at=end if status != "canceled" else None,
                metadata=metadata,
            )
            if row["status"] == "paused":
                state.subscriptions[sub_id]["pause_collection"] = {"behavior": "void", "resumes_at": None}
            if status == "canceled":
                sub = state.subscriptions[sub_id]
                sub.update(canceled_at=end, ended_at=end)
                sub["cancellation_details"] = {
                    "comment": row["cancel_reason"] or None,
                    "feedback": None,
                    "reason": "cancellation_requested",
                }
        for row in invoices:
            currency = (row["currency"] or "JPY").lower()
            amount, tax = _minor(row["amount"], currency), _minor(row["tax"] or "0", currency)
            issued = int(datetime.fromisoformat(row["issued_at"]).replace(tzinfo=tz).timestamp())
            period = None
            if row["period_start"] and row["period_end"]:
                last = date.fromisoformat(row["period_end"])
                period = (_epoch(date.fromisoformat(row["period_start"]), tz), _epoch(last + timedelta(days=1), tz))
            refunded = row["status"] == "refunded"
            state.add_invoice(
                customer_of[row["customer_id"]],
                amount=amount,
                tax=tax,
                currency=currency,
                status="paid" if refunded else row["status"],
                subscription=f"sub_{row['subscription_id']}" if row["subscription_id"] else None,
                item=row["subscription_id"] or None,
                period=period,
                issued=issued,
                id=row["invoice_id"],
                credited=amount + tax if refunded else 0,
            )
    return {"customers": len(customer_of), "subscriptions": len(subs), "invoices": len(invoices)}


def seed_synthetic(state: StripeState, subscriptions: int) -> None:
    """`subscriptions` customers with one monthly subscription and one paid invoice each (for benchmarks).

    Objects are created one second apart, ending a minute ago, like an account that grew over time."""
    with state.lock:
        start = int(time.time()) - subscriptions - 60
        product = state.add_product("CRM Suite", id="prod_bench")
        prices = [state.add_price(product, unit_amount=1000 * (n + 1), nickname=f"Plan {n}") for n in range(5)]
        for n in range(subscriptions):
            state.clock = start + n
            customer = state.add_customer(f"株式会社ベンチ{n:06d}", metadata={"kizuna_customer_id": f"C{n:06d}"})
            sub = state.add_subscription(customer, [(prices[n % 5], n % 40 + 1)])
            item = state.subscriptions[sub]["items"]["data"][0]["id"]
            state.add_invoice(customer, amount=1000, tax=100, subscription=sub, item=item)
        state.clock = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscriptions", type=int, default=0, help="seed this many (for the benchmark)")
    parser.add_argument("--demo-dir", type=Path, help="seed a `kizuna demo-data` directory")
    args = parser.parse_args()
    state = StripeState(record_requests=False)
    if args.subscriptions:
        seed_synthetic(state, args.subscriptions)
    if args.demo_dir:
        seed_from_demo(state, args.demo_dir)
    with StripeStandin(state) as standin:
        print(standin.base, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
