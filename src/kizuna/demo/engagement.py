"""Touches: sales and success activities (with accounts left untouched for weeks) and support tickets."""

from __future__ import annotations

from datetime import date

import numpy as np
import numpy.typing as npt

from kizuna.demo import vocab
from kizuna.demo.accounts import Customers
from kizuna.demo.dates import NONE, IntArray, day_number, office_seconds, to_workday
from kizuna.demo.output import OutTable, columns_frame, labels, sql_date, sql_id, sql_timestamp
from kizuna.demo.subscriptions import History
from kizuna.demo.usage import Signals

FloatArray = npt.NDArray[np.float64]
WINDOW_DAYS = 365
ACTIVITY_TYPES = ["call", "meeting", "email", "visit", "note"]


def _customers(rate: FloatArray, rng: np.random.Generator) -> IntArray:
    """Customer index of each row, Poisson-many rows per customer, grouped by customer."""
    return np.repeat(np.arange(len(rate)), rng.poisson(rate))


def _reviews(customer: IntArray, day: IntArray, kind: IntArray) -> IntArray:
    """A review date (day number, -1 for none) on rows sorted by customer and time: every sixth customer whose last
    touch was a call with a conversation agreed to come back to it two weeks later (a rep logging "later"). Those
    not touched since are today's follow-ups (the follow_up_due signal). No random draw: the data stay as they were.
    """
    conversation = vocab.ACTIVITY_KINDS.index(("call", "conversation", 18))
    last = np.r_[customer[1:] != customer[:-1], True] if len(customer) else np.zeros(0, dtype=bool)
    chosen = last & (kind == conversation) & (customer % 6 == 0)
    return np.where(chosen, to_workday(day + 14), -1)


def activities_table(c: Customers, h: History, as_of: date, rng: np.random.Generator) -> OutTable:
    """One row per logged touch in the last year; the bigger and the still-paying, the more often."""
    today = day_number(as_of)
    live = h.current >= 0
    owned = c.owner >= 0
    rate = (1.5 + 1.2 * np.log10(c.employees) + 8 * owned) * np.where(live, 1.0, 0.15)
    customer = _customers(rate, rng)
    # each account's last touch lies some time back: days for most, weeks or months for a neglected few
    quiet = np.where(rng.random(c.n) < 0.2, rng.integers(21, 120, c.n), rng.exponential(6, c.n).astype(np.int64))
    span = np.maximum(WINDOW_DAYS - quiet, 1)
    back = quiet[customer] + np.floor(rng.random(len(customer)) ** 1.5 * span[customer]).astype(np.int64)
    # nobody logs calls with a company before it became a customer
    day = np.maximum(to_workday(today - 1 - back), h.first_start[customer])
    when = office_seconds(day, rng)

    kinds = vocab.ACTIVITY_KINDS
    weights = np.array([w for _, _, w in kinds])
    kind = rng.choice(len(kinds), len(customer), p=weights / weights.sum())
    type_code = np.array([ACTIVITY_TYPES.index(t) for t, _, _ in kinds])[kind]
    outcomes = sorted({o for _, o, _ in kinds if o})
    outcome = np.array([outcomes.index(o) if o else NONE for _, o, _ in kinds])[kind]

    # who logged it: the AE on owned accounts, else the CSM or an inside-sales rep
    staff = (
        vocab.staff_emails(vocab.ACCOUNT_EXECUTIVES)
        + vocab.staff_emails(vocab.CS_MANAGERS)
        + vocab.staff_emails(vocab.INSIDE_SALES)
    )
    n_ae, n_cs = len(vocab.ACCOUNT_EXECUTIVES), len(vocab.CS_MANAGERS)
    inside = n_ae + n_cs + rng.integers(0, len(vocab.INSIDE_SALES), len(customer))
    u = rng.random(len(customer))
    ae, cs = c.owner[customer], c.cs_owner[customer]
    who = np.where((ae >= 0) & (u < 0.7), ae, np.where((cs >= 0) & (u < 0.85), n_ae + cs, inside))

    order = np.lexsort((when, customer))
    review = _reviews(customer[order], day[order], kind[order])
    frame = columns_frame(
        {
            "activity": np.arange(1, len(customer) + 1),
            "customer": customer[order] + 1,
            "type": labels(type_code[order], ACTIVITY_TYPES),
            "occurred": when[order],
            "owner": labels(who[order], staff),
            "outcome": labels(outcome[order], outcomes),
            "review": review,
        }
    )
    select = {
        "activity_id": sql_id("A", "activity", 8),
        "customer_id": sql_id("C", "customer", 6),
        "type": "type",
        "occurred_at": sql_timestamp("occurred"),
        "owner_email": "owner",
        "outcome": "outcome",
        "next_review_on": sql_date("review", nullable=True),
    }
    return OutTable("activities", frame, select)


def tickets_table(c: Customers, h: History, signals: Signals, as_of: date, rng: np.random.Generator) -> OutTable:
    """One row per support ticket in the last year; struggling customers write in more, and about leaving."""
    today = day_number(as_of)
    live = h.current >= 0
    rate = (0.6 + 0.5 * np.log10(c.employees)) * np.where(live, 1.0, 0.1) * np.where(signals.dropping, 2.0, 1.0)
    customer = _customers(rate, rng)
    day = to_workday(today - 1 - rng.integers(0, WINDOW_DAYS, len(customer)))
    # tickets come from paying customers: not before they started, nor after they left
    left = np.where(live, today, h.churned_on)[customer]
    day = np.clip(day, h.first_start[customer], np.maximum(left, h.first_start[customer]))
    created = office_seconds(day, rng, start_hour=8, hours=12)

    p = np.array([w for _, w in vocab.TICKET_CATEGORIES])
    category = rng.choice(len(p), len(customer), p=p / p.sum())
    leaving = len(p) - 1  # the last category: cancellation and downgrade questions
    worried = signals.dropping[customer] & (rng.random(len(customer)) < 0.25)
    category = np.where(worried, leaving, category)

    order = np.lexsort((created, customer))
    frame = columns_frame(
        {
            "ticket": np.arange(1, len(customer) + 1),
            "customer": customer[order] + 1,
            "created": created[order],
            "category": labels(category[order], [k for k, _ in vocab.TICKET_CATEGORIES]),
        }
    )
    select = {
        "ticket_id": sql_id("T", "ticket", 7),
        "customer_id": sql_id("C", "customer", 6),
        "created_at": sql_timestamp("created"),
        "category": "category",
    }
    return OutTable("support_tickets", frame, select)
