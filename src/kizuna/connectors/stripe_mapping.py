"""Stripe objects -> contract values: money in the currency's unit, MRR from price and quantity, statuses.

Pure functions over Stripe objects as plain dicts (`StripeObject.to_dict()`); no I/O. docs/sources.md
(section "Stripe") documents the mapping column by column; this module (with stripe_prices, for money) is
its single home.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from kizuna.connectors.stripe_prices import (
    MappingError,
    Obj,
    apply_coupons,
    billing_period_months,
    money,
    monthly,
    period_amount_minor,
    recurring_coupons,
    upper,
)

# Stripe subscription status -> contract status; None: not a subscription yet, no row (docs/sources.md).
STATUS: dict[str, str | None] = {
    "active": "active",
    "trialing": "trialing",
    "past_due": "past_due",
    "unpaid": "past_due",  # retries exhausted, invoices left open: dbt's past_due grace period ends it
    "canceled": "canceled",
    "paused": "trialing",  # a trial that ended without a payment method: nothing was ever billed
    "incomplete": None,  # first payment not made yet (expires after 23 hours)
    "incomplete_expired": None,
}
# Stripe invoice status -> contract status; None: not issued, no row.
INVOICE_STATUS: dict[str, str | None] = {
    "draft": None,
    "open": "open",
    "paid": "paid",
    "void": "void",
    "uncollectible": "open",  # still owed (and payable): keeps the past_due clock of its subscription running
}
PLAN_CHANGE = "plan_change"  # cancel_reason of a period closed because price, quantity or discount changed
ITEM_REMOVED = "item_removed"  # cancel_reason of an item taken off a subscription that goes on


def local_date(epoch: int | None, tz: ZoneInfo) -> date | None:
    return None if epoch is None else datetime.fromtimestamp(int(epoch), tz).date()


def utc_time(epoch: int | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(int(epoch), UTC)


def customer_id_of(customer: Obj | str | None, metadata_key: str) -> str | None:
    """The kizuna customer id of a Stripe customer: its metadata value under `metadata_key`, else its Stripe id.

    `customer` is an expanded customer object or a bare id; None when it is a deleted customer (whose
    metadata is gone) or missing, so the caller can keep what it knew.
    """
    if customer is None:
        return None
    if isinstance(customer, str):
        return customer
    if customer.get("deleted"):
        return None
    value = (customer.get("metadata") or {}).get(metadata_key)
    if value is not None and str(value).strip():
        return str(value).strip()
    return str(customer["id"])


def stripe_customer_id(customer: Obj | str | None) -> str | None:
    if customer is None or isinstance(customer, str):
        return customer
    return str(customer.get("id"))


# -- subscriptions ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemValues:
    """One subscription item as the contract sees it at one moment; the period (dates, status) comes later."""

    item_id: str
    started_on: date  # the subscription's start for items it began with, else the day the item was added
    values: dict[str, Any]  # customer_id, mrr, amount, billing_period_months, product, plan, quantity, ...
    revenue: str  # what makes a new period when it changes: price, quantity, amounts (docs/sources.md)


@dataclass(frozen=True)
class SubscriptionValues:
    subscription_id: str
    stripe_status: str
    status: str | None  # contract status; None: no rows (incomplete)
    started_on: date
    trial: tuple[date, date] | None  # trial_start, trial_end (local dates)
    in_trial: bool
    end_date: date | None  # ended_at, or the scheduled cancel_at (exclusive end)
    ended: bool
    cancel_reason: str | None
    items: list[ItemValues]


@dataclass(frozen=True)
class Lookups:
    """How the mapping reaches objects not embedded in a subscription (fetched once per pull and cached)."""

    product: Callable[[str], Obj]
    tiers: Callable[[str], list[dict[str, Any]]]
    coupon: Callable[[Obj], Obj]  # the coupon of a discount that names it by id


@dataclass(frozen=True)
class MappingOptions:
    customer_id_metadata_key: str
    contract_term_metadata_key: str
    plan_limit_metadata_key: str
    tz: ZoneInfo


def _metadata_value(key: str, *objects: Obj | None) -> str | None:
    for obj in objects:
        value = ((obj or {}).get("metadata") or {}).get(key)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _int_or_error(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        return int(Decimal(text))
    except ArithmeticError as exc:
        raise MappingError(f"{what} must be a whole number, got {text!r}") from exc


def cancel_reason(subscription: Obj) -> str | None:
    """The customer's feedback code (too_expensive, ...), else their comment, else Stripe's reason."""
    details = subscription.get("cancellation_details") or {}
    for field_name in ("feedback", "comment", "reason"):
        value = details.get(field_name)
        if value:
            return str(value)
    return None


def subscription_values(
    sub: Obj, lookups: Lookups, options: MappingOptions, now: datetime, known_customer: str | None = None
) -> SubscriptionValues:
    """Everything the contract needs from one subscription object (items expanded with their discounts)."""
    tz = options.tz
    stripe_status = str(sub.get("status"))
    status = STATUS.get(stripe_status, "active")
    if status == "active" and sub.get("pause_collection"):
        status = "paused"  # collection paused on a paid subscription
    started_on = local_date(sub.get("start_date") or sub.get("created"), tz)
    assert started_on is not None
    trial = None
    if sub.get("trial_start") and sub.get("trial_end"):
        trial_from, trial_to = local_date(sub["trial_start"], tz), local_date(sub["trial_end"], tz)
        assert trial_from is not None and trial_to is not None
        trial = (trial_from, trial_to)
    ended = stripe_status == "canceled" or sub.get("ended_at") is not None
    items_data = ((sub.get("items") or {}).get("data")) or []
    customer_id = customer_id_of(sub.get("customer"), options.customer_id_metadata_key)
    customer_id = customer_id or known_customer or stripe_customer_id(sub.get("customer"))
    items = _item_values(sub, items_data, lookups, options, now, started_on, customer_id)
    end_date = local_date(_end_epoch(sub, items_data, ended), tz)
    return SubscriptionValues(
        subscription_id=str(sub["id"]),
        stripe_status=stripe_status,
        status=status,
        started_on=started_on,
        trial=trial,
        in_trial=stripe_status in ("trialing", "paused"),
        end_date=end_date,
        ended=ended,
        cancel_reason=cancel_reason(sub) if end_date is not None else None,
        items=items,
    )


def _end_epoch(sub: Obj, items_data: list[Any], ended: bool) -> int | None:
    """When the subscription ended, or is scheduled to (cancel_at, or the end of the period it cancels at)."""
    end_epoch = sub.get("ended_at") or (sub.get("canceled_at") if ended else None) or sub.get("cancel_at")
    if end_epoch is None and sub.get("cancel_at_period_end"):
        ends = [i.get("current_period_end") for i in items_data if i.get("current_period_end")]
        end_epoch = max(ends) if ends else None
    return end_epoch


def _licensed(items_data: list[Obj], lookups: Lookups) -> list[tuple[Obj, Obj, Obj]]:
    """(item, price with its tiers, recurring) of each item billed per seat or unit, not on usage."""
    licensed = []
    for item in items_data:
        price = item.get("price") or {}
        recurring = price.get("recurring") or {}
        if recurring.get("usage_type") == "metered":
            continue  # billed on usage: its revenue shows in invoices, not in MRR
        if price.get("billing_scheme") == "tiered" and not price.get("tiers"):
            price = {**price, "tiers": lookups.tiers(str(price["id"]))}
        licensed.append((item, price, recurring))
    return licensed


def _item_values(
    sub: Obj,
    items_data: list[Obj],
    lookups: Lookups,
    options: MappingOptions,
    now: datetime,
    started_on: date,
    customer_id: str | None,
) -> list[ItemValues]:
    """Each licensed item's values: its amount after the subscription's coupons (spread over the items), then
    its own, in whole units; its MRR, product, plan and the metadata the contract reads."""
    sub_id = str(sub["id"])
    currency = upper(sub.get("currency"))
    sub_coupons = recurring_coupons(sub.get("discounts") or [], lookups.coupon, now)
    licensed = _licensed(items_data, lookups)
    before = [period_amount_minor(price, int(item.get("quantity") or 0)) for item, price, _ in licensed]
    after_sub = apply_coupons(before, sub_coupons, currency)
    created = int(sub.get("created") or 0)

    items = []
    for (item, price, recurring), amount_minor in zip(licensed, after_sub, strict=True):
        item_id = str(item["id"])
        item_currency = upper(price.get("currency") or currency)
        item_coupons = recurring_coupons(item.get("discounts") or [], lookups.coupon, now)
        (amount_minor,) = apply_coupons([amount_minor], item_coupons, item_currency)
        amount_minor = amount_minor.quantize(Decimal(1), rounding=ROUND_HALF_UP)  # invoices bill whole units
        amount = money(amount_minor, item_currency)
        assert amount is not None
        try:
            mrr = monthly(amount, recurring, item_currency)
        except MappingError as exc:
            raise MappingError(f"subscription {sub_id} item {item_id}: {exc}") from exc
        product_ref = price.get("product")
        product = lookups.product(product_ref) if isinstance(product_ref, str) else (product_ref or {})
        period_months = billing_period_months(recurring)
        term = _int_or_error(
            _metadata_value(options.contract_term_metadata_key, item, sub, price, product),
            f"subscription {sub_id} metadata {options.contract_term_metadata_key}",
        )
        plan_limit = _metadata_value(options.plan_limit_metadata_key, item, sub, price, product)
        item_created = int(item.get("created") or created)
        # Items created with the subscription start with it (its start_date may be backdated).
        item_start = started_on if item_created - created < 60 else local_date(item_created, options.tz)
        assert item_start is not None
        quantity = int(item.get("quantity") or 0)
        values = {
            "customer_id": customer_id,
            "mrr": mrr,
            "amount": amount,
            "billing_period_months": period_months,
            "product": product.get("name"),
            "plan": price.get("nickname") or price.get("lookup_key"),
            "quantity": quantity,
            "plan_limit": plan_limit,
            "contract_term_months": term if term is not None else period_months,
            "currency": item_currency,
        }
        revenue = "|".join(str(v) for v in (price.get("id"), quantity, mrr, amount, period_months, item_currency))
        items.append(ItemValues(item_id, max(item_start, started_on), values, revenue))
    return items


# -- invoices and customers ---------------------------------------------------------------------------------------


def invoice_row(invoice: Obj, options: MappingOptions, known_customer: str | None = None) -> dict[str, Any] | None:
    """One contract invoices row; None for a draft (not issued yet)."""
    status = INVOICE_STATUS.get(str(invoice.get("status")), "open")
    if status is None:
        return None
    currency = upper(invoice.get("currency"))
    total = int(invoice.get("total") or 0)
    if status == "paid" and total > 0 and int(invoice.get("post_payment_credit_notes_amount") or 0) >= total:
        status = "refunded"  # credited in full after payment
    taxes = sum(int(t.get("amount") or 0) for t in invoice.get("total_taxes") or [])
    excluding = invoice.get("total_excluding_tax")
    amount_minor = int(excluding) if excluding is not None else total - taxes
    subscription_lines = [
        line
        for line in ((invoice.get("lines") or {}).get("data") or [])
        if (line.get("parent") or {}).get("type") == "subscription_item_details"
    ]
    subscription_id = period_start = period_end = None
    if subscription_lines:
        largest = max(subscription_lines, key=lambda line: int(line.get("amount") or 0))
        subscription_id = largest["parent"]["subscription_item_details"].get("subscription_item")
        starts = [int(line["period"]["start"]) for line in subscription_lines if line.get("period")]
        ends = [int(line["period"]["end"]) for line in subscription_lines if line.get("period")]
        if starts and ends:
            period_start = local_date(min(starts), options.tz)
            last = local_date(max(ends), options.tz)
            assert last is not None
            period_end = last - timedelta(days=1)  # Stripe's period end is the next period's start
    issued = (invoice.get("status_transitions") or {}).get("finalized_at") or invoice.get("created")
    customer_id = customer_id_of(invoice.get("customer"), options.customer_id_metadata_key)
    return {
        "invoice_id": str(invoice["id"]),
        "customer_id": customer_id or known_customer or stripe_customer_id(invoice.get("customer")),
        "subscription_id": subscription_id,
        "issued_at": utc_time(issued),
        "period_start": period_start,
        "period_end": period_end,
        "amount": money(amount_minor, currency),
        "tax": money(taxes, currency),
        "currency": currency,
        "status": status,
    }


CUSTOMER_METADATA_COLUMNS = ("industry", "employee_count", "prefecture", "owner_email", "cs_owner_email")


def customer_row(customer: Obj, options: MappingOptions) -> dict[str, Any]:
    """One contract customers row: name (else email, else id), address, and metadata keys named like columns."""
    address = customer.get("address") or {}
    metadata = customer.get("metadata") or {}
    row: dict[str, Any] = {
        "customer_id": customer_id_of(customer, options.customer_id_metadata_key) or str(customer["id"]),
        "name": customer.get("name") or customer.get("email") or str(customer["id"]),
        "country": address.get("country"),
        "prefecture": address.get("state") if address.get("country") == "JP" else None,
        "created_at": utc_time(customer.get("created")),
    }
    for column in CUSTOMER_METADATA_COLUMNS:
        value = metadata.get(column)
        if value is not None and str(value).strip():
            row[column] = str(value).strip()
    return row
