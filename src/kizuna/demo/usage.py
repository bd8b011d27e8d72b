"""Monthly product usage per customer: active users against the plan's limit, and API calls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from kizuna.demo.accounts import BoolArray
from kizuna.demo.dates import NONE, days_of, month_index, month_index_of
from kizuna.demo.output import OutTable, columns_frame, labels, sql_date, sql_id
from kizuna.demo.subscriptions import ADDON, PLAN_CHANGE, Subscriptions

USAGE_MONTHS = 12  # complete months before the as-of month
METRICS = ["active_users", "api_calls"]
NEAR_LIMIT_SHARE = 0.15
DROPPING_SHARE = 0.12
PLAN_API_FACTOR = np.array([1.0, 2.0, 4.0])  # by CRM plan


@dataclass(frozen=True)
class Signals:
    """Which customers were made to look like upsell or churn candidates."""

    near_limit: BoolArray
    dropping: BoolArray


def usage_table(s: Subscriptions, n: int, as_of: date, rng: np.random.Generator) -> tuple[OutTable, Signals]:
    """One row per customer, month and metric while a CRM plan was live at the month's end."""
    months = month_index(as_of) - USAGE_MONTHS + np.arange(USAGE_MONTHS)
    month_end = days_of(months + 1, 1) - 1
    core = np.nonzero(s.origin != ADDON)[0]
    end = np.where(s.end[core] >= 0, s.end[core], np.iinfo(np.int64).max)
    # rows of one customer never overlap, so at most one is live at each month end
    live = (s.start[core][:, None] <= month_end) & (month_end < end[:, None])
    sub_i, month_i = np.nonzero(live)
    order = np.lexsort((month_i, s.customer[core[sub_i]]))
    sub_i, month_i = sub_i[order], month_i[order]
    row = core[sub_i]
    customer = s.customer[row]
    limit = s.quantity[row]

    near_limit = rng.random(n) < NEAR_LIMIT_SHARE
    dropping = ~near_limit & (rng.random(n) < DROPPING_SHARE)
    utilisation = np.where(near_limit, rng.uniform(0.9, 1.0, n), rng.beta(4, 3, n))
    depth = rng.uniform(0.4, 0.75, n)
    # the decline starts four months before the as-of month and deepens every month
    months_left = USAGE_MONTHS - 1 - month_i
    decline = np.where(dropping[customer], np.clip((4 - months_left) / 4, 0, 1) * depth[customer], 0)
    # customers who churn also fade in the months before they leave
    churn_month = np.where(s.end[row] >= 0, month_index_of(s.end[row]), NONE)
    to_churn = churn_month - months[month_i]
    churns = (s.reason[row] >= 0) & (s.reason[row] != PLAN_CHANGE)
    decline = np.maximum(decline, np.where((to_churn >= 1) & (to_churn <= 4) & churns, (5 - to_churn) * 0.15, 0))
    noise = rng.normal(1, 0.04, len(row))
    users = np.clip(np.floor(limit * utilisation[customer] * (1 - decline) * noise), 0, limit).astype(np.int64)
    # bigger plans integrate more systems, so each user drives more API traffic
    per_user = np.exp(rng.normal(np.log(300), 0.6, n))[customer] * PLAN_API_FACTOR[s.plan[row]]
    calls = np.floor(users * per_user * rng.normal(1, 0.1, len(row)).clip(0.5)).astype(np.int64)

    frame = columns_frame(
        {
            "customer": np.repeat(customer + 1, 2),
            "month": np.repeat(days_of(months[month_i], 1), 2),
            "metric": labels(np.tile([0, 1], len(row)), METRICS),
            "value": np.column_stack([users, calls]).ravel(),
        }
    )
    select = {
        "customer_id": sql_id("C", "customer", 6),
        "month": sql_date("month"),
        "metric": "metric",
        "value": "value",
    }
    return OutTable("usage", frame, select), Signals(near_limit, dropping)
