"""Deals: won deals behind every new, upgraded, win-back and add-on subscription, renewals, open pipeline."""

from __future__ import annotations

from datetime import date

import numpy as np
import numpy.typing as npt

from kizuna.demo import catalogue
from kizuna.demo.dates import NONE, IntArray, day_number, days_of, month_index, office_seconds, to_workday
from kizuna.demo.handoffs import STAFF, handoff_columns
from kizuna.demo.output import OutTable, columns_frame, labels, sql_bool, sql_id, sql_timestamp
from kizuna.demo.subscriptions import ADDON, FIRST, PLAN_CHANGE, RETURNED, STATUS, UPGRADED, Subscriptions
from kizuna.demo.usage import Signals

TYPES = ["new", "upsell", "cross_sell", "renewal"]
NEW, UPSELL, CROSS_SELL, RENEWAL = range(4)
STAGES = ["qualification", "proposal", "negotiation", "closed_won", "closed_lost"]
OPEN_STAGES_P = np.array([0.35, 0.4, 0.25])
WON, LOST = 3, 4
SOURCES = [
    "inbound", "partner", "field_sales", "event",
    "customer_inside_sales", "customer_success", "account_executive", "campaign:renewal_reminder",
]  # fmt: skip
# source shares per kind of deal, in SOURCES order
SOURCE_P = {
    "first": [45, 20, 25, 10, 0, 0, 0, 0],
    "win_back": [0, 0, 0, 0, 80, 20, 0, 0],
    "expansion": [5, 0, 0, 0, 52, 22, 21, 0],
    "renewal": [0, 0, 0, 0, 35, 50, 0, 15],
}
RENEWAL_LOOKAHEAD_DAYS = 90
# sources of CSQL deals (dbt vars inside_sales_lead_sources, campaign_lead_source_prefix)
CSQL_SOURCES = np.array([name == "customer_inside_sales" or name.startswith("campaign:") for name in SOURCES])


class _Deals:
    def __init__(self, today: int, rng: np.random.Generator) -> None:
        self.today, self.rng = today, rng
        self.parts: list[dict[str, npt.NDArray[np.int64]]] = []

    def add(
        self, customer: IntArray, kind: int, stage: IntArray, amount: IntArray,
        created_day: IntArray, closed_day: IntArray, source: str,
    ) -> None:  # fmt: skip
        n, rng = len(customer), self.rng
        p = np.array(SOURCE_P[source], float)
        created_day = to_workday(np.minimum(created_day, self.today - 1))
        closed_day = np.where(closed_day >= 0, to_workday(np.clip(closed_day, created_day, self.today - 1)), NONE)
        created = office_seconds(created_day, rng)
        # a deal closed the day it opened closes later that day
        closed = np.where(
            closed_day >= 0, np.maximum(office_seconds(np.maximum(closed_day, 0), rng), created + 600), NONE
        )
        self.parts.append(
            {
                "customer": customer,
                "type": np.full(n, kind),
                "stage": stage,
                "amount": np.maximum(amount, 0),
                "created": created,
                "closed": closed,
                "won": np.select([stage == WON, stage == LOST], [1, 0], NONE),
                "source": rng.choice(len(SOURCES), n, p=p / p.sum()),
            }
        )

    def table(self, account_owner: IntArray, handoff_rng: np.random.Generator) -> OutTable:
        cols = {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}
        order = np.lexsort((cols["type"], cols["customer"], cols["created"]))
        cols = {k: v[order] for k, v in cols.items()}
        # drawn from a stream of their own, so the other columns stay as they were before these existed
        csql = np.isin(cols["type"], (UPSELL, CROSS_SELL)) & CSQL_SOURCES[cols["source"]]
        handoff = handoff_columns(
            csql, account_owner[cols["customer"]], cols["stage"], cols["created"], cols["closed"], self.today,
            handoff_rng,
        )  # fmt: skip
        frame = columns_frame(
            {
                "deal": np.arange(1, len(order) + 1),
                "customer": cols["customer"] + 1,
                "type": labels(cols["type"], TYPES),
                "stage": labels(cols["stage"], STAGES),
                "amount": cols["amount"],
                "created": cols["created"],
                "closed": cols["closed"],
                "won": cols["won"],
                "source": labels(cols["source"], SOURCES),
                "owner": labels(handoff["owner"], STAFF),
                "creator": labels(handoff["creator"], STAFF),
                "handed": handoff["handed"],
                "accepted": handoff["accepted"],
                "rejected": handoff["rejected"],
            }
        )
        select = {
            "deal_id": sql_id("D", "deal", 7),
            "customer_id": sql_id("C", "customer", 6),
            "type": "type",
            "stage": "stage",
            "amount": "amount",
            "created_at": sql_timestamp("created"),
            "closed_at": sql_timestamp("closed", nullable=True),
            "is_won": sql_bool("won"),
            "source": "source",
            "owner_email": "owner",
            "created_by_email": "creator",
            "handed_off_at": sql_timestamp("handed", nullable=True),
            "accepted_at": sql_timestamp("accepted", nullable=True),
            "rejected_at": sql_timestamp("rejected", nullable=True),
            "next_review_on": "CAST(NULL AS DATE)",  # no follow-ups in the demo (yet): the column, blank
        }
        return OutTable("deals", frame, select)


def _annual_value(s: Subscriptions, i: IntArray) -> IntArray:
    return np.where(s.prepaid[i], catalogue.prepaid_year(s.monthly[i], s.usd[i]), s.monthly[i] * 12)


def deals_table(
    s: Subscriptions, signals: Signals, account_owner: IntArray, as_of: date,
    rng: np.random.Generator, handoff_rng: np.random.Generator,
) -> OutTable:  # fmt: skip
    """One row per deal; amounts are annual contract values (the increase, for upsells); CSQL hand-offs."""
    today = day_number(as_of)
    deals = _Deals(today, rng)

    def lead(i: IntArray, lo: int, hi: int) -> IntArray:
        return s.start[i] - rng.integers(lo, hi, len(i))

    trial = s.status == STATUS["trialing"]
    won_rows = {
        ("first", NEW): (s.origin == FIRST) & ~trial,
        ("win_back", NEW): s.origin == RETURNED,
        ("expansion", UPSELL): s.origin == UPGRADED,
        ("expansion", CROSS_SELL): s.origin == ADDON,
    }
    for (source, kind), mask in won_rows.items():
        i = np.nonzero(mask)[0]
        value = _annual_value(s, i) - np.where(kind == UPSELL, s.prev_monthly[i] * 12, 0)
        deals.add(s.customer[i], kind, np.full(len(i), WON), value, lead(i, 20, 90), lead(i, 0, 10), source)
    i = np.nonzero(trial)[0]
    deals.add(
        s.customer[i],
        NEW,
        rng.choice(3, len(i), p=OPEN_STAGES_P),
        _annual_value(s, i),
        s.start[i],
        np.full(len(i), NONE),
        "first",
    )

    _renewals(s, deals, as_of, rng)

    core_live = (s.origin != ADDON) & (s.status != STATUS["canceled"]) & ~trial
    u = rng.random(len(s.customer))
    near = signals.near_limit[s.customer]
    for kind, mask, share in (
        (UPSELL, core_live & (u < np.where(near, 0.25, 0.03)), (0.2, 0.6)),
        (CROSS_SELL, core_live & (u > 0.97), (0.1, 0.3)),
    ):
        i = np.nonzero(mask)[0]
        amount = np.round(s.monthly[i] * 12 * rng.uniform(*share, len(i)), -3).astype(np.int64)
        created = today - rng.integers(1, 60, len(i))
        deals.add(
            s.customer[i],
            kind,
            rng.choice(3, len(i), p=OPEN_STAGES_P),
            amount,
            created,
            np.full(len(i), NONE),
            "expansion",
        )
    i = np.nonzero(core_live & (u > 0.5) & (u < 0.55))[0]
    created = today - rng.integers(60, 330, len(i))
    amount = np.round(s.monthly[i] * 12 * rng.uniform(0.2, 0.6, len(i)), -3).astype(np.int64)
    deals.add(
        s.customer[i],
        UPSELL,
        np.full(len(i), LOST),
        amount,
        created,
        created + rng.integers(14, 60, len(i)),
        "expansion",
    )
    return deals.table(account_owner, handoff_rng)


def _renewals(s: Subscriptions, deals: _Deals, as_of: date, rng: np.random.Generator) -> None:
    """Anniversaries of annual CRM rows in the last year (won, or lost when the customer left) and soon (open)."""
    today, this_month = day_number(as_of), month_index(as_of)
    annual = np.nonzero((s.term == 12) & (s.origin != ADDON))[0]
    first_term = np.maximum(1, (this_month - 13 - s.start_month[annual]) // 12)
    for extra in range(3):
        i = annual
        when = days_of(s.start_month[i] + 12 * (first_term + extra), s.day[i])
        end = s.end[i]
        churned = (s.reason[i] >= 0) & (s.reason[i] != PLAN_CHANGE)
        in_window = (when > today - 365) & (when <= today + RENEWAL_LOOKAHEAD_DAYS) & ((end < 0) | (when <= end))
        at_end = when == end
        won = in_window & (when <= today) & ~at_end
        lost = in_window & (when <= today) & at_end & churned
        pending = in_window & (when > today) & (rng.random(len(i)) < 0.6)
        stage = np.select([won, lost], [WON, LOST], rng.choice(3, len(i), p=OPEN_STAGES_P))
        pick = won | lost | pending
        when, i, stage = when[pick], i[pick], stage[pick]
        created = when - rng.integers(45, 120, len(i))
        closed = np.where(stage >= WON, when - rng.integers(0, 30, len(i)), NONE)
        deals.add(s.customer[i], RENEWAL, stage, _annual_value(s, i), created, closed, "renewal")
