"""Stripe's Events API: the event types each table follows, and the mark an incremental pull resumes from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kizuna.connectors.stripe_client import StripeApi

EVENTS_CLOCK_SLACK_SECONDS = 300  # a first pull on an account without events starts this far back
SUBSCRIPTION_EVENTS = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.pending_update_applied",
    "customer.updated",
    "product.updated",
    "price.updated",
]
INVOICE_EVENTS = [
    "invoice.created",
    "invoice.updated",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.deleted",
    "credit_note.created",
    "credit_note.voided",
    "customer.updated",
]
CUSTOMER_EVENTS = ["customer.created", "customer.updated", "customer.deleted"]
EVENT_TYPES = {"subscriptions": SUBSCRIPTION_EVENTS, "invoices": INVOICE_EVENTS, "customers": CUSTOMER_EVENTS}


@dataclass
class Event:
    id: str
    type: str
    created: int
    obj: dict[str, Any]
    previous: dict[str, Any]


def newest_event_mark(api: StripeApi, now: float) -> dict[str, Any]:
    """Where the next pull's events start: the newest event now, before anything is listed."""
    page = api.get("events", "/v1/events", {"limit": 1}) or {}
    if not page.get("data"):
        return {"created": int(now) - EVENTS_CLOCK_SLACK_SECONDS, "ids": []}
    newest = int(page["data"][0]["created"])
    # every event of that second, so the next pull does not take them for new ones
    same_second = api.list_all("events", "/v1/events", {"created": {"gte": newest}})
    return {"created": newest, "ids": sorted({e["id"] for e in same_second if int(e["created"]) == newest})}


def events_since(api: StripeApi, mark: dict[str, Any], types: list[str]) -> tuple[list[Event], dict[str, Any]]:
    """Events of these types after the mark, oldest first, and the mark after them."""
    seen = set(mark.get("ids") or [])
    params = {"created": {"gte": int(mark["created"])}, "types": types}
    events = []
    for raw in api.list_all("events", "/v1/events", params):
        if raw["id"] in seen:
            continue
        data = raw.get("data") or {}
        events.append(
            Event(
                raw["id"],
                raw["type"],
                int(raw["created"]),
                data.get("object") or {},
                data.get("previous_attributes") or {},
            )
        )
    events.reverse()  # Stripe lists newest first
    if not events:
        return events, mark
    newest = max(e.created for e in events)
    ids = [e.id for e in events if e.created == newest]
    if newest == int(mark["created"]):
        ids += list(seen)
    return events, {"created": newest, "ids": sorted(set(ids))}
