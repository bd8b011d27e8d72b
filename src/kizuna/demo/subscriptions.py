"""Subscription histories: each customer's CRM plan chain (upgrades, downgrades, churn, win-backs) and add-ons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from kizuna.core.contract import SUBSCRIPTION_STATUSES
from kizuna.demo import catalogue, vocab
from kizuna.demo.accounts import BoolArray, Customers
from kizuna.demo.dates import NONE, IntArray, day_number, days_of, month_index
from kizuna.demo.output import OutTable, columns_frame, labels, sql_date, sql_id, sql_number

HISTORY_MONTHS = 48
SLOTS = 5  # plan periods per customer; the last never ends, so a chain is never cut short
TRIAL_DAYS = 14
NEVER = 1 << 40  # an end month that never comes

# What ends a plan period: transitions and their shares.
UPGRADE, DOWNGRADE, CHURN, WIN_BACK = 0, 1, 2, 3  # WIN_BACK: churn, then a new subscription after a gap
TRANSITIONS = np.array([0.38, 0.12, 0.32, 0.18])

# Why a row exists: its deal type follows from this.
FIRST, UPGRADED, DOWNGRADED, RETURNED, ADDON = 0, 1, 2, 3, 4

STATUS = {s: i for i, s in enumerate(SUBSCRIPTION_STATUSES)}
REASONS = [r for r, _ in vocab.CHURN_REASONS] + [vocab.PLAN_CHANGE_REASON]
_REASON_P = np.array([w for _, w in vocab.CHURN_REASONS]) / sum(w for _, w in vocab.CHURN_REASONS)
PLAN_CHANGE = len(REASONS) - 1


@dataclass(frozen=True)
class Subscriptions:
    """One entry per subscription row, ordered by start date; months and `day` give exact period bounds."""

    customer: IntArray  # 0-based
    start_month: IntArray
    end_month: IntArray  # NONE when open-ended
    day: IntArray  # day of month every period of the row starts on
    start: IntArray  # day numbers
    end: IntArray
    plan: IntArray  # index into catalogue.PLANS
    quantity: IntArray
    monthly: IntArray  # value per month, whichever way it is billed
    prev_monthly: IntArray  # value per month of the row this one replaced, else 0
    prepaid: BoolArray  # billed a year at a time with `amount` instead of `mrr`
    term: IntArray
    usd: BoolArray
    status: IntArray
    reason: IntArray  # index into REASONS, or NONE
    origin: IntArray  # FIRST .. ADDON


@dataclass(frozen=True)
class History:
    """Per customer facts derived from the subscriptions that later tables lean on."""

    first_start: IntArray
    current: IntArray  # row index of the current CRM subscription, or NONE
    churned_on: IntArray  # day number of the last churn, or NONE


def _pick_plan(employees: IntArray, rng: np.random.Generator) -> IntArray:
    # bigger companies start on bigger plans
    bucket = np.digitize(employees, [50, 300, 1000])
    cumulative = np.array([[0.75, 0.97], [0.30, 0.85], [0.10, 0.60], [0.03, 0.40]])[bucket]
    u = rng.random(len(employees))
    return (u >= cumulative[:, 0]).astype(np.int64) + (u >= cumulative[:, 1])


def _fit_seats(plan: IntArray, seats: IntArray) -> tuple[IntArray, IntArray]:
    """Move up a plan while the seats exceed its maximum, then clamp to the plan's range."""
    for _ in range(catalogue.CORE_PLANS - 1):
        plan = np.where(seats > catalogue.MAX_SEATS[plan], np.minimum(plan + 1, catalogue.CORE_PLANS - 1), plan)
    return plan, np.clip(seats, catalogue.INCLUDED[plan], catalogue.MAX_SEATS[plan])


def _next_plan(
    plan: IntArray, seats: IntArray, move: IntArray, rng: np.random.Generator
) -> tuple[IntArray, IntArray, IntArray]:
    """Plan and seats after a transition; a downgrade with nothing left to give up becomes churn."""
    n = len(plan)
    grow = rng.uniform(1.2, 1.8, n)
    shrink = rng.uniform(0.55, 0.85, n)
    up_plan = (plan < catalogue.CORE_PLANS - 1) & (rng.random(n) < 0.6)
    down_plan = (plan > 0) & (rng.random(n) < 0.5)
    new_plan = plan.copy()
    new_seats = seats.copy()

    up = move == UPGRADE
    new_plan = np.where(up & up_plan, plan + 1, new_plan)
    new_seats = np.where(up & ~up_plan, np.ceil(seats * grow), new_seats)

    down = move == DOWNGRADE
    new_plan = np.where(down & down_plan, plan - 1, new_plan)
    new_seats = np.where(down, np.floor(seats * shrink), new_seats)

    back = move == WIN_BACK
    new_plan = np.where(back & (rng.random(n) < 0.3), np.maximum(plan - 1, 0), new_plan)
    new_seats = np.where(back, np.floor(seats * rng.uniform(0.7, 1.0, n)), new_seats)

    new_plan, new_seats = _fit_seats(new_plan, new_seats.astype(np.int64))
    stuck = down & (new_plan == plan) & (new_seats >= seats)
    return new_plan, new_seats, np.where(stuck, CHURN, move)


@dataclass(frozen=True)
class _Terms:
    """Per customer: when and how the first subscription starts and is billed."""

    m0: IntArray  # month of the first start
    day: IntArray  # day of month every period starts on
    annual: BoolArray
    prepaid: BoolArray
    fixed_end: BoolArray  # contracts that state their current term's end date
    usd: BoolArray
    discount: npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Chains:
    """Per customer and slot (customers x SLOTS): each plan period of the chain and what ended it."""

    plan0: IntArray
    start_m: IntArray
    end_m: IntArray
    move: IntArray
    plan: IntArray
    seats: IntArray
    exists: BoolArray  # the period started before today and follows a period that did not churn
    ended: BoolArray
    current: BoolArray


def draw_subscriptions(c: Customers, as_of: date, rng: np.random.Generator) -> tuple[Subscriptions, History]:
    # The draws happen in a fixed order (terms, chains, reasons, statuses, add-ons): a seed gives the same data.
    today, this_month = day_number(as_of), month_index(as_of)
    terms = _draw_terms(c, today, this_month, rng)
    chains = _draw_chains(c, terms, today, this_month, rng)
    churn_reason = rng.choice(len(_REASON_P), (c.n, SLOTS), p=_REASON_P)
    cols = _Rows()
    status = _add_core_rows(cols, terms, chains, churn_reason, today, this_month, rng)
    _add_addon_rows(cols, terms, chains, churn_reason, status, today, this_month, rng)
    subs = cols.build()
    return subs, _history(subs, terms, c.n)


def _draw_terms(c: Customers, today: int, this_month: int, rng: np.random.Generator) -> _Terms:
    n = c.n
    # more customers joined recently than four years ago: the book has been growing
    m0 = this_month - np.floor(HISTORY_MONTHS * rng.random(n) ** 1.25).astype(np.int64)
    day = np.where(rng.random(n) < 0.55, 1, rng.integers(2, 29, n))
    annual = rng.random(n) < np.clip(0.3 + 0.12 * np.log10(c.employees), 0.3, 0.85)
    # Japanese fiscal years start in April, and many annual contracts with them
    april = annual & (rng.random(n) < 0.15)
    m0 = np.where(april, m0 - (m0 - 3) % 12, m0)
    m0 = np.where(m0 <= this_month - HISTORY_MONTHS, m0 + 12, m0)
    day = np.where(april, 1, day)
    m0 = np.where(days_of(m0, day) > today, m0 - 1, m0)
    prepaid = annual & (rng.random(n) < 0.5)
    fixed_end = annual & (rng.random(n) < 0.4)
    discount = np.where(rng.random(n) < 0.3, rng.choice([0.05, 0.1, 0.15, 0.2], n), 0.0)
    return _Terms(m0, day, annual, prepaid, fixed_end, c.foreign, discount)


def _draw_chains(c: Customers, terms: _Terms, today: int, this_month: int, rng: np.random.Generator) -> _Chains:
    n, k_ = c.n, SLOTS
    plan0, seats0 = _fit_seats(
        _pick_plan(c.employees, rng), np.ceil(c.employees * rng.uniform(0.1, 0.6, n)).astype(np.int64)
    )
    start_m = np.empty((n, k_), np.int64)
    dur = np.empty((n, k_), np.int64)
    move = np.empty((n, k_), np.int64)
    plan = np.empty((n, k_), np.int64)
    seats = np.empty((n, k_), np.int64)
    m, p, q = terms.m0, plan0, seats0
    for k in range(k_):
        start_m[:, k], plan[:, k], seats[:, k] = m, p, q
        # annual contracts change only at a renewal; monthly ones run ~2 years between changes
        d = np.where(terms.annual, 12 * rng.geometric(0.4, n), rng.geometric(1 / 22, n))
        if k == k_ - 1:
            d = np.full(n, NEVER)
        p, q, t = _next_plan(p, q, rng.choice(4, n, p=TRANSITIONS), rng)
        dur[:, k], move[:, k] = d, t
        m = m + d + np.where(t == WIN_BACK, rng.integers(3, 15, n), 0)
    end_m = start_m + dur
    days = terms.day[:, None]
    started = days_of(np.minimum(start_m, this_month + 1), days) <= today
    ended = days_of(np.minimum(end_m, this_month + 1), days) <= today
    exists = started.copy()
    for k in range(1, k_):
        exists[:, k] &= exists[:, k - 1] & ended[:, k - 1] & (move[:, k - 1] != CHURN)
    return _Chains(plan0, start_m, end_m, move, plan, seats, exists, ended, exists & ~ended)


def _add_core_rows(
    cols: _Rows,
    terms: _Terms,
    ch: _Chains,
    churn_reason: IntArray,
    today: int,
    this_month: int,
    rng: np.random.Generator,
) -> IntArray:
    """The CRM plan rows of every chain: end, status, reason, price and origin. Returns each slot's status."""
    n = len(terms.m0)
    ended, current, move, start_m = ch.ended, ch.current, ch.move, ch.start_m
    days = terms.day[:, None]
    reason = np.where(ended, np.where(np.isin(move, [CHURN, WIN_BACK]), churn_reason, PLAN_CHANGE), NONE)
    # a stated term end is the next anniversary; open-ended rows renew on it silently
    terms_run = (this_month - start_m) // 12 + 1
    anniversary = start_m + 12 * terms_run
    anniversary = np.where(days_of(anniversary - 12, days) > today, anniversary - 12, anniversary)
    row_end = np.where(ended, ch.end_m, np.where(current & terms.fixed_end[:, None], anniversary, NONE))

    status = np.where(ended, STATUS["canceled"], STATUS["active"])
    fresh = current[:, 0] & (days_of(terms.m0, terms.day) > today - TRIAL_DAYS) & ~terms.annual
    status[:, 0] = np.where(fresh, STATUS["trialing"], status[:, 0])
    trouble = rng.random((n, SLOTS))
    monthly_current = current & ~terms.annual[:, None] & (status == STATUS["active"])
    status = np.where(monthly_current & (trouble < 0.025), STATUS["past_due"], status)
    status = np.where(monthly_current & (trouble > 0.993), STATUS["paused"], status)

    monthly = catalogue.monthly_price(ch.plan, ch.seats, terms.usd[:, None], terms.discount[:, None])
    prev = np.concatenate([np.zeros((n, 1), np.int64), monthly[:, :-1]], axis=1)
    after = np.concatenate([np.full((n, 1), -1), move[:, :-1]], axis=1)
    origin = np.select(
        [after == UPGRADE, after == DOWNGRADE, after == WIN_BACK], [UPGRADED, DOWNGRADED, RETURNED], FIRST
    )
    prev = np.where(np.isin(origin, [UPGRADED, DOWNGRADED]), prev, 0)

    rows = np.nonzero(ch.exists)
    term = np.where(terms.annual, 12, 1)
    cols.add(
        customer=rows[0], start_month=start_m[rows], end_month=row_end[rows], day=terms.day[rows[0]],
        plan=ch.plan[rows], quantity=ch.seats[rows], monthly=monthly[rows], prev_monthly=prev[rows],
        prepaid=terms.prepaid[rows[0]], term=term[rows[0]], usd=terms.usd[rows[0]], status=status[rows],
        reason=reason[rows], origin=origin[rows],
    )  # fmt: skip
    return status


def _add_addon_rows(
    cols: _Rows,
    terms: _Terms,
    ch: _Chains,
    churn_reason: IntArray,
    status: IntArray,
    today: int,
    this_month: int,
    rng: np.random.Generator,
) -> None:
    """Add-ons are cross-sold a few months in, while the CRM is live, and end with it at the latest."""
    n, k_ = len(terms.m0), SLOTS
    m0, day, usd, discount = terms.m0, terms.day, terms.usd, terms.discount
    core_status = np.where(ch.current, status, NONE).max(axis=1)
    churn_end = np.where(ch.exists & ch.ended & np.isin(ch.move, [CHURN, WIN_BACK]), ch.end_m, NEVER)
    for addon, share in zip(catalogue.ADDONS, ([0.10, 0.30, 0.45], [0.01, 0.08, 0.35]), strict=True):
        a_start = m0 + rng.integers(2, 31, n)
        covering = ch.exists & (ch.start_m <= a_start[:, None]) & (a_start[:, None] < ch.end_m)
        take = (
            (rng.random(n) < np.array(share)[ch.plan0])
            & covering.any(axis=1)
            & (days_of(np.minimum(a_start, this_month + 1), day) <= today)
        )
        from_slot = covering.argmax(axis=1)
        core_end = np.where(np.arange(k_) >= from_slot[:, None], churn_end, NEVER).min(axis=1)
        own_end = np.where(rng.random(n) < 0.3, a_start + rng.geometric(1 / 20, n), NEVER)
        a_end = np.minimum(core_end, own_end)
        a_ended = days_of(np.minimum(a_end, this_month + 1), day) <= today
        ending_slot = (churn_end == core_end[:, None]).argmax(axis=1)
        core_reason = churn_reason[np.arange(n), ending_slot]
        a_reason = np.where(own_end < core_end, churn_reason[:, -1], core_reason)
        a_status = np.where(a_ended, STATUS["canceled"], np.maximum(core_status, STATUS["active"]))
        i = np.nonzero(take)[0]
        a_plan = np.full(len(i), addon)
        cols.add(
            customer=i, start_month=a_start[i], end_month=np.where(a_ended, a_end, NONE)[i], day=day[i],
            plan=a_plan, quantity=np.ones(len(i), np.int64),
            monthly=catalogue.monthly_price(a_plan, np.ones(len(i), np.int64), usd[i], discount[i]),
            prev_monthly=np.zeros(len(i), np.int64), prepaid=np.zeros(len(i), bool), term=np.ones(len(i), np.int64),
            usd=usd[i], status=a_status[i], reason=np.where(a_ended, a_reason, NONE)[i],
            origin=np.full(len(i), ADDON),
        )  # fmt: skip


def _history(subs: Subscriptions, terms: _Terms, n: int) -> History:
    first_start = days_of(terms.m0, terms.day)
    cur = np.full(n, NONE)
    is_core_current = (subs.origin != ADDON) & (subs.status != STATUS["canceled"])
    cur[subs.customer[is_core_current]] = np.nonzero(is_core_current)[0]
    churned = np.full(n, NONE)
    churn_rows = (subs.reason >= 0) & (subs.reason != PLAN_CHANGE) & (subs.origin != ADDON)
    np.maximum.at(churned, subs.customer[churn_rows], subs.end[churn_rows])
    return History(first_start, cur, churned)


class _Rows:
    """Collects column chunks, then orders all rows by start date (ids follow creation order)."""

    def __init__(self) -> None:
        self.chunks: list[dict[str, npt.NDArray[np.generic]]] = []

    def add(self, **columns: npt.NDArray[np.generic]) -> None:
        self.chunks.append(columns)

    def build(self) -> Subscriptions:
        cols = {k: np.concatenate([c[k] for c in self.chunks]) for k in self.chunks[0]}
        start = days_of(cols["start_month"], cols["day"])
        has_end = cols["end_month"] >= 0
        end = np.where(has_end, days_of(np.where(has_end, cols["end_month"], cols["start_month"]), cols["day"]), NONE)
        order = np.lexsort((cols["plan"], cols["customer"], start))
        cols = {k: v[order] for k, v in cols.items()}
        return Subscriptions(start=start[order], end=end[order], **cols)


def subscriptions_table(s: Subscriptions) -> OutTable:
    """One row per subscription; prepaid annual rows carry `amount` for the year, the others `mrr`."""
    prepaid_amount = catalogue.prepaid_year(s.monthly, s.usd)
    frame = columns_frame(
        {
            "subscription": np.arange(1, len(s.customer) + 1),
            "customer": s.customer + 1,
            "start": s.start,
            "end": s.end,
            "mrr": np.where(s.prepaid, NONE, s.monthly),
            "amount": np.where(s.prepaid, prepaid_amount, NONE),
            "billing": np.where(s.prepaid, 12, 1),
            "product": labels(s.plan, [p.product for p in catalogue.PLANS]),
            "plan": labels(s.plan, [p.plan for p in catalogue.PLANS]),
            "quantity": s.quantity,
            # add-ons are not licensed per user, so they have no limit
            "plan_limit": np.where(s.plan < catalogue.CORE_PLANS, s.quantity, NONE),
            "term": s.term,
            "currency": labels(s.usd.astype(np.int64), catalogue.CURRENCIES),
            "status": labels(s.status, list(SUBSCRIPTION_STATUSES)),
            "reason": labels(s.reason, REASONS),
        }
    )
    select = {
        "subscription_id": sql_id("S", "subscription", 7),
        "customer_id": sql_id("C", "customer", 6),
        "start_date": sql_date("start"),
        "end_date": sql_date("end", nullable=True),
        "mrr": sql_number("mrr"),
        "amount": sql_number("amount"),
        "billing_period_months": "billing",
        "product": "product",
        "plan": "plan",
        "quantity": "quantity",
        "plan_limit": sql_number("plan_limit"),
        "contract_term_months": "term",
        "currency": "currency",
        "status": "status",
        "cancel_reason": "reason",
    }
    return OutTable("subscriptions", frame, select)
