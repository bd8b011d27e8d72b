"""Stripe objects -> contract values: money in the currency's unit, MRR from price and quantity, statuses.

Pure functions over Stripe objects as plain dicts (`StripeObject.to_dict()`); no I/O. docs/sources.md
(section "Stripe") documents the mapping column by column; this module is its single home.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

Obj = Mapping[str, Any]

# Stripe sends amounts as integers in the currency's smallest unit (docs.stripe.com/currencies): these
# currencies have none, these three have thousandths; ISK, HUF and TWD stay two-decimal in the API.
STRIPE_ZERO_DECIMAL = frozenset(
    ["BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"]
)
STRIPE_THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])
# MRR is rounded to the currency's ISO 4217 minor unit, as dbt's `zero_decimal_currencies()` macro rounds
# (dbt_project/macros/money.sql): whole units for these, hundredths otherwise.
ISO_ZERO_DECIMAL = frozenset(
    ["JPY", "KRW", "VND", "CLP", "ISK", "PYG", "UGX", "XAF", "XOF", "XPF", "BIF", "DJF", "GNF", "KMF", "RWF", "VUV"]
)

# Months in one price interval: MRR = amount per period / (months per interval x interval_count).
MONTHS_PER_INTERVAL: dict[str, tuple[int, int]] = {  # as a fraction (numerator, denominator)
    "month": (1, 1),
    "year": (12, 1),
    "week": (12, 52),  # 52 weeks make 12 months
    "day": (12, 365),  # 365 days make 12 months
}

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


class MappingError(ValueError):
    """A Stripe object kizuna cannot map (names the object and field)."""


def upper(currency: object) -> str:
    return str(currency or "").upper()


def money(minor: object, currency: str) -> Decimal | None:
    """An amount in the currency's smallest unit (as Stripe sends it) in the currency's unit: 1200 JPY is
    1200 yen, 1200 USD is 12.00 dollars."""
    if minor is None:
        return None
    value = Decimal(str(minor))
    code = upper(currency)
    if code in STRIPE_ZERO_DECIMAL:
        return value
    return value / (1000 if code in STRIPE_THREE_DECIMAL else 100)


def round_money(value: Decimal, currency: str) -> Decimal:
    """Half away from zero to the ISO minor unit (whole yen, cents), as the dbt models round MRR."""
    step = Decimal(1) if upper(currency) in ISO_ZERO_DECIMAL else Decimal("0.01")
    return value.quantize(step, rounding=ROUND_HALF_UP)


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


# -- prices and MRR ------------------------------------------------------------------------------------------


def billing_period_months(recurring: Obj) -> int | None:
    """Whole months per billing period (month: interval_count, year: 12 x interval_count); None for weeks and days."""
    num, den = MONTHS_PER_INTERVAL[str(recurring["interval"])]
    months = num * int(recurring.get("interval_count") or 1)
    return months // den if months % den == 0 else None


def monthly(amount: Decimal, recurring: Obj, currency: str) -> Decimal:
    """MRR of an amount billed once per period: / interval_count, then month 1, year / 12, week x 52 / 12,
    day x 365 / 12; rounded half away from zero to the currency's minor unit."""
    interval = str(recurring.get("interval"))
    if interval not in MONTHS_PER_INTERVAL:
        raise MappingError(f"price interval {interval!r} is not one of {', '.join(MONTHS_PER_INTERVAL)}")
    num, den = MONTHS_PER_INTERVAL[interval]
    count = int(recurring.get("interval_count") or 1)
    return round_money(amount * den / (num * count), currency)


def _decimal(value: object, fallback: object = None) -> Decimal | None:
    chosen = value if value is not None else fallback
    return None if chosen is None else Decimal(str(chosen))


def billed_quantity(price: Obj, quantity: int) -> int:
    """The quantity Stripe bills: `transform_quantity` divides it (rounding up or down)."""
    transform = price.get("transform_quantity")
    if not transform:
        return quantity
    divided = Decimal(quantity) / int(transform["divide_by"])
    rounding = ROUND_CEILING if transform.get("round") == "up" else ROUND_FLOOR
    return int(divided.to_integral_value(rounding=rounding))


def period_amount_minor(price: Obj, quantity: int) -> Decimal:
    """The amount one billing period costs before discounts, in the smallest unit (fractions allowed)."""
    qty = billed_quantity(price, quantity)
    if price.get("billing_scheme") == "tiered":
        tiers = price.get("tiers")
        if not tiers:
            raise MappingError(f"price {price.get('id')}: tiered price without its tiers")
        return _tiered(tiers, str(price.get("tiers_mode") or "volume"), qty)
    unit = _decimal(price.get("unit_amount_decimal"), price.get("unit_amount"))
    if unit is None:
        raise MappingError(f"price {price.get('id')}: no unit_amount (custom or unsupported pricing)")
    return unit * qty


def _tiered(tiers: list[Obj], mode: str, qty: int) -> Decimal:
    """volume: every unit at the price of the tier the quantity falls in; graduated: each tier's units at
    its own price. A tier's flat_amount is charged once when the quantity reaches the tier."""
    total = Decimal(0)
    below = 0
    for tier in tiers:
        up_to = tier.get("up_to")
        unit = _decimal(tier.get("unit_amount_decimal"), tier.get("unit_amount")) or Decimal(0)
        flat = _decimal(tier.get("flat_amount_decimal"), tier.get("flat_amount")) or Decimal(0)
        if mode == "volume":
            if up_to is None or qty <= int(up_to):
                return flat + unit * qty
            continue
        units = (qty if up_to is None else min(qty, int(up_to))) - below
        if units <= 0:
            break
        total += flat + unit * units
        below = qty if up_to is None else int(up_to)
    return total


@dataclass(frozen=True)
class Coupon:
    percent_off: Decimal | None
    amount_off: int | None  # in the smallest unit of `currency`
    currency: str | None
    currency_options: Mapping[str, Any]

    def amount_off_in(self, currency: str) -> Decimal | None:
        if self.amount_off is None:
            return None
        if upper(self.currency) == upper(currency):
            return Decimal(self.amount_off)
        option = self.currency_options.get(currency.lower()) or {}
        return _decimal(option.get("amount_off"))


def recurring_coupons(discounts: list[Any], coupon_of: Callable[[Obj], Obj], now: datetime) -> list[Coupon]:
    """The coupons that lower the recurring price: duration forever or repeating and not ended; a `once`
    coupon lowers one invoice, not the rate. Discounts must be expanded; a coupon given as an id is looked up
    by `coupon_of(discount)`."""
    found = []
    for discount in discounts or []:
        if isinstance(discount, str):
            raise MappingError(f"discount {discount} was not expanded")
        if discount.get("end") is not None and int(discount["end"]) <= now.timestamp():
            continue
        source = discount.get("source") or {}
        coupon = source.get("coupon") or discount.get("coupon")  # older API versions: discount.coupon
        if coupon is None:
            continue
        if isinstance(coupon, str):
            coupon = coupon_of(discount)
        if coupon.get("duration") == "once":
            continue
        found.append(
            Coupon(
                percent_off=_decimal(coupon.get("percent_off")),
                amount_off=coupon.get("amount_off"),
                currency=coupon.get("currency"),
                currency_options=coupon.get("currency_options") or {},
            )
        )
    return found


def apply_coupons(amounts: list[Decimal], coupons: list[Coupon], currency: str) -> list[Decimal]:
    """Lower each amount by the coupons in turn: a percentage of each, an amount spread over the amounts in
    proportion to their size (a subscription-level amount_off applies to the whole invoice). Never below 0."""
    out = list(amounts)
    for coupon in coupons:
        if coupon.percent_off is not None:
            out = [a * (100 - coupon.percent_off) / 100 for a in out]
        off = coupon.amount_off_in(currency)
        if off is not None:
            total = sum(out, Decimal(0))
            out = [max(Decimal(0), a - off * a / total) if total > 0 else a for a in out]
    return [max(Decimal(0), a) for a in out]


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
    sub_id = str(sub["id"])
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
    end_epoch = sub.get("ended_at") or (sub.get("canceled_at") if ended else None) or sub.get("cancel_at")
    if end_epoch is None and sub.get("cancel_at_period_end"):
        ends = [i.get("current_period_end") for i in items_data if i.get("current_period_end")]
        end_epoch = max(ends) if ends else None
    customer_id = customer_id_of(sub.get("customer"), options.customer_id_metadata_key)
    customer_id = customer_id or known_customer or stripe_customer_id(sub.get("customer"))
    currency = upper(sub.get("currency"))
    sub_coupons = recurring_coupons(sub.get("discounts") or [], lookups.coupon, now)

    licensed = []
    for item in items_data:
        price = item.get("price") or {}
        recurring = price.get("recurring") or {}
        if recurring.get("usage_type") == "metered":
            continue  # billed on usage: its revenue shows in invoices, not in MRR
        if price.get("billing_scheme") == "tiered" and not price.get("tiers"):
            price = {**price, "tiers": lookups.tiers(str(price["id"]))}
        licensed.append((item, price, recurring))
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
        item_start = started_on if item_created - created < 60 else local_date(item_created, tz)
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

    end_date = local_date(end_epoch, tz)
    return SubscriptionValues(
        subscription_id=sub_id,
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
