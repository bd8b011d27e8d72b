"""Invoices: one per billing period of every subscription row, up to the as-of date."""

from __future__ import annotations

from datetime import date

import numpy as np

from kizuna.demo import catalogue
from kizuna.demo.dates import DAY_SECONDS, day_number, days_of, month_index
from kizuna.demo.output import OutTable, columns_frame, labels, sql_date, sql_id, sql_timestamp
from kizuna.demo.subscriptions import STATUS, Subscriptions

INVOICE_STATUSES = ["paid", "open", "void", "refunded"]


def invoices_table(s: Subscriptions, as_of: date, rng: np.random.Generator) -> OutTable:
    """Periods start on the subscription's day of month; trials are not billed."""
    today, this_month = day_number(as_of), month_index(as_of)
    period = np.where(s.prepaid, 12, 1)
    last_month = np.where(s.day <= as_of.day, this_month, this_month - 1)  # last period start not after as_of
    count = (last_month - s.start_month) // period + 1
    count = np.where(s.end_month >= 0, np.minimum(count, -(-(s.end_month - s.start_month) // period)), count)
    count = np.where(s.status == STATUS["trialing"], 0, np.maximum(count, 0))

    # per subscription first, then one gather per column: the invoice rows outnumber them tenfold
    amount = np.where(s.prepaid, catalogue.prepaid_year(s.monthly, s.usd), s.monthly)
    tax = catalogue.tax(amount, s.usd)
    row = np.repeat(np.arange(len(count)), count)
    nth = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)
    day = s.day[row]
    begin_m = s.start_month[row] + nth * period[row]
    begin = days_of(begin_m, day)
    finish = days_of(begin_m + period[row], day) - 1

    # old invoices are almost all paid; 月末締め翌月末払い leaves recent ones mostly open
    u = rng.random(len(row))
    status = np.select([u < 0.01, u > 0.995, u > 0.988], [1, 3, 2], 0)
    recent = np.nonzero(begin > today - 75)[0]
    age = today - begin[recent]
    open_share = np.select([age < 20, age < 45], [0.85, 0.35], 0.01)
    open_share = np.where(s.status[row[recent]] == STATUS["past_due"], 1.0, open_share)
    status[recent] = np.where(u[recent] < open_share, 1, status[recent])

    frame = columns_frame(
        {
            "invoice": np.arange(1, len(row) + 1),
            "customer": s.customer[row] + 1,
            "subscription": row + 1,
            # the billing run issues invoices early in the morning of the period's first day
            "issued": begin * DAY_SECONDS + 6 * 3600 + rng.integers(0, 1800, len(row)),
            "begin": begin,
            "finish": finish,
            "amount": amount[row],
            "tax": tax[row],
            "currency": labels(s.usd[row].astype(np.int8), catalogue.CURRENCIES),
            "status": labels(status, INVOICE_STATUSES),
        }
    )
    select = {
        "invoice_id": sql_id("INV-", "invoice", 8),
        "customer_id": sql_id("C", "customer", 6),
        "subscription_id": sql_id("S", "subscription", 7),
        "issued_at": sql_timestamp("issued"),
        "period_start": sql_date("begin"),
        "period_end": sql_date("finish"),
        "amount": "amount",
        "tax": "tax",
        "currency": "currency",
        "status": "status",
    }
    return OutTable("invoices", frame, select)
