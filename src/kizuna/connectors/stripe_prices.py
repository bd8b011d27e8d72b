"""Stripe prices -> money: currency units, MRR per billing interval, tiers, quantities and recurring coupons."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

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
