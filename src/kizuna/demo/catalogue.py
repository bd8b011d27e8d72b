"""The demo company's price list: a CRM suite in three plans and two add-ons, in yen and dollars."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Plan:
    product: str
    plan: str
    base_jpy: int  # per month, includes `included_seats`
    seat_jpy: int  # per month per seat above the included ones
    base_usd: int
    seat_usd: int
    included_seats: int
    max_seats: int  # a customer outgrowing this must move up a plan


CRM = "CRM Suite"
PLANS: tuple[Plan, ...] = (
    Plan(CRM, "Starter", 30_000, 2_000, 250, 15, 10, 30),
    Plan(CRM, "Standard", 80_000, 2_500, 650, 20, 20, 300),
    Plan(CRM, "Enterprise", 250_000, 2_000, 2_000, 15, 50, 100_000),
    Plan("Analytics Add-on", "Standard", 20_000, 0, 150, 0, 1, 1),
    Plan("Support Plan", "Premium", 50_000, 0, 400, 0, 1, 1),
)
CORE_PLANS = 3  # PLANS[:3] are the CRM suite's plans, in upgrade order
ADDONS = (3, 4)
CURRENCIES = ["JPY", "USD"]  # by the customers' `usd` flag
TAX_RATE_JP = 0.10  # consumption tax; exports to foreign customers carry none
PREPAY_DISCOUNT = 0.9  # paying a year up front buys about one month free

_BASE_JPY = np.array([p.base_jpy for p in PLANS])
_SEAT_JPY = np.array([p.seat_jpy for p in PLANS])
_BASE_USD = np.array([p.base_usd for p in PLANS])
_SEAT_USD = np.array([p.seat_usd for p in PLANS])
INCLUDED = np.array([p.included_seats for p in PLANS])
MAX_SEATS = np.array([p.max_seats for p in PLANS])


def monthly_price(
    plan: npt.NDArray[np.int64],
    seats: npt.NDArray[np.int64],
    usd: npt.NDArray[np.bool_],
    discount: npt.NDArray[np.float64],
) -> npt.NDArray[np.int64]:
    """List price per month less a negotiated discount, rounded as sales quotes are (¥1,000 / $10)."""
    extra = np.maximum(seats - INCLUDED[plan], 0)
    jpy = (_BASE_JPY[plan] + _SEAT_JPY[plan] * extra) * (1 - discount)
    usd_ = (_BASE_USD[plan] + _SEAT_USD[plan] * extra) * (1 - discount)
    return np.where(usd, np.round(usd_ / 10) * 10, np.round(jpy / 1000) * 1000).astype(np.int64)


def prepaid_year(monthly: npt.NDArray[np.int64], usd: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """The price of a year paid up front."""
    year = monthly * 12 * PREPAY_DISCOUNT
    return np.where(usd, np.round(year / 10) * 10, np.round(year / 1000) * 1000).astype(np.int64)


def tax(amount: npt.NDArray[np.int64], usd: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Japanese consumption tax, rounded down as most invoicing systems do."""
    return np.where(usd, 0, np.floor(amount * TAX_RATE_JP)).astype(np.int64)
