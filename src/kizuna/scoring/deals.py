"""Open deals: win probability, expected close month and amount, activity alert band, next action and risk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from kizuna.core.connection import Connection
from kizuna.core.warehouse import table_exists
from kizuna.scoring.features import MAX_TRAINING_ROWS
from kizuna.scoring.model import KindChoice, KindSetting, ModelKind, choose_kind, fit_calibrated, roc_auc
from kizuna.scoring.next_actions import SIGNAL_COLUMNS, TOUCH_WINDOW_DAYS, deal_next_actions

DEAL_TYPES = ("new", "upsell", "cross_sell", "renewal")
# Elapsed days since the last activity, coloured as on a sales kanban: (upper bound inclusive, band).
ACTIVITY_BANDS: tuple[tuple[int, str], ...] = ((7, "green"), (14, "yellow"), (30, "orange"))
DEAL_FEATURES = (
    "amount_log",
    *(f"is_{t}" for t in DEAL_TYPES),
    "is_inside_sales_lead",
    "touches_30_days_before",
    "mrr",
    "usage_vs_3_month_average",
    "plan_usage_ratio",
    "days_since_last_touch",
    "tenure_months",
    "tickets_last_90_days",
)

# The deals created by the as-of date, closed ones or open ones ($closed), and the touches before each one's creation.
_DEALS_CTES = """
deals AS (
    SELECT deal_id, customer_id, deal_type, stage, CAST(amount AS DOUBLE PRECISION) AS amount, created_at, closed_at,
           is_won, lead_source
    FROM staging.stg_crm__deals
    WHERE CAST(created_at AS DATE) <= $as_of AND (closed_at IS NOT NULL) = $closed
),
touches AS (
    SELECT customer_id, activity_type, occurred_at FROM staging.stg_crm__activities
    WHERE activity_type IN ('call', 'meeting', 'email', 'visit') AND CAST(occurred_at AS DATE) <= $as_of
),
before_creation AS (
    SELECT d.deal_id, count(t.customer_id) AS touches_30_days_before
    FROM deals d LEFT JOIN touches t
      ON t.customer_id = d.customer_id AND t.occurred_at < d.created_at
     AND t.occurred_at >= d.created_at - INTERVAL '30 days'  -- a feature: fixed, whatever the window
    GROUP BY d.deal_id
)"""
_FEATURES_JOIN = """
-- the customer as seen on the first day of the deal's month: nothing dated on or after it
LEFT JOIN intermediate.int_customer_features_monthly f
  ON f.customer_id = d.customer_id AND f.snapshot_on = CAST(date_trunc('month', d.created_at) AS DATE)
 AND NOT f.is_scoring_snapshot"""
_FEATURE_COLUMNS = (
    "f.mrr, f.usage_vs_3_month_average, f.plan_usage_ratio, f.days_since_last_touch, f.tenure_months, "
    "f.tickets_last_90_days"
)

# The open deals, for the forecast: every column, the last touch, the recent touch types and the customer's rank.
DEALS_SQL = f"""
WITH {_DEALS_CTES},
last_touches AS (
    SELECT customer_id, max(occurred_at) AS last_touch_at,
           -- the touch types of the last days before the as-of date, as counted before wins (PRECEDING_SQL)
           string_agg(DISTINCT activity_type, ',' ORDER BY activity_type)
               FILTER (WHERE occurred_at >= $as_of - INTERVAL '{TOUCH_WINDOW_DAYS} days') AS recent_touch_types
    FROM touches
    -- only the deals' customers: the open deals' are a tenth of those with touches at 1M customers
    WHERE customer_id IN (SELECT customer_id FROM deals)
    GROUP BY customer_id
)
SELECT d.*, b.touches_30_days_before, l.last_touch_at, l.recent_touch_types, s.customer_rank AS rank,
       {_FEATURE_COLUMNS}
FROM deals d
JOIN before_creation b USING (deal_id)
LEFT JOIN last_touches l USING (customer_id)
LEFT JOIN __RANKS__ s USING (customer_id){_FEATURES_JOIN}
ORDER BY d.deal_id
"""

# The closed deals, for training: only what train_deal_model reads (deal_matrix's inputs, the outcome, the order
# and the customer groups). The forecast's last touch, touch types and rank are one row per customer joined to
# each deal (no row more or less), so leaving them out keeps the same rows in the same order, and spares the
# read of the 1.7M closed deals at 1M customers the aggregate of every touch of their customers and a string
# column: that read was the scores step's peak, and with it the first run's (docs/scores.md, "Memory").
TRAINING_COLUMNS = (
    "deal_id",
    "customer_id",
    "deal_type",
    "amount",
    "created_at",
    "is_won",
    "lead_source",
    "touches_30_days_before",
    *DEAL_FEATURES[len(DEAL_TYPES) + 3 :],
)
CLOSED_DEALS_SQL = f"""
WITH {_DEALS_CTES}
SELECT d.deal_id, d.customer_id, d.deal_type, d.amount, d.created_at, d.is_won, d.lead_source,
       b.touches_30_days_before, {_FEATURE_COLUMNS}
FROM deals d
JOIN before_creation b USING (deal_id){_FEATURES_JOIN}
ORDER BY d.deal_id
"""

PRECEDING_SQL = f"""
-- Per won deal type and rank band (the customer's rank; NULL: the type as a whole): won deals, and the share of
-- them with at least one touch of each type in the days before winning.
WITH won AS (
    -- a customer without a rank is in the band '' (no open deal's band), so NULL stays the type's total
    SELECT d.deal_id, d.customer_id, d.deal_type, d.closed_at, coalesce(s.customer_rank, '') AS rank
    FROM staging.stg_crm__deals d LEFT JOIN __RANKS__ s USING (customer_id)
    WHERE d.is_won AND CAST(d.closed_at AS DATE) <= $as_of
),
preceding AS (
    SELECT DISTINCT w.deal_id, w.deal_type, w.rank, a.activity_type
    FROM won w JOIN staging.stg_crm__activities a
      ON a.customer_id = w.customer_id AND a.occurred_at < w.closed_at
     AND a.occurred_at >= w.closed_at - INTERVAL '{TOUCH_WINDOW_DAYS} days'
     AND a.activity_type IN ('call', 'meeting', 'email', 'visit')
),
won_counts AS (
    SELECT deal_type, rank, count(*) AS won_deals FROM won GROUP BY GROUPING SETS ((deal_type, rank), (deal_type))
),
touch_counts AS (
    SELECT deal_type, rank, activity_type, count(*) AS deals
    FROM preceding GROUP BY GROUPING SETS ((deal_type, rank, activity_type), (deal_type, activity_type))
)
SELECT t.deal_type, t.rank, t.activity_type, CAST(t.deals AS DOUBLE PRECISION) / n.won_deals AS share, n.won_deals
FROM touch_counts t JOIN won_counts n ON n.deal_type = t.deal_type AND n.rank IS NOT DISTINCT FROM t.rank
ORDER BY t.deal_type, t.rank NULLS FIRST, share DESC, t.activity_type
"""

SIGNALS_SQL = f"""
SELECT {", ".join(SIGNAL_COLUMNS)} FROM marts.customer_signals
WHERE customer_id IN (SELECT customer_id FROM staging.stg_crm__deals WHERE closed_at IS NULL)
"""


def activity_band(days: float) -> str:
    for upper, band in ACTIVITY_BANDS:
        if days <= upper:
            return band
    return "red"


def deal_matrix(deals: pd.DataFrame) -> np.ndarray:
    frame = pd.DataFrame(index=deals.index)
    frame["amount_log"] = np.log1p(deals["amount"].astype(float).clip(lower=0))
    for t in DEAL_TYPES:
        frame[f"is_{t}"] = (deals["deal_type"] == t).astype(float)
    frame["is_inside_sales_lead"] = (deals["lead_source"] == "customer_inside_sales").astype(float)
    for name in DEAL_FEATURES[len(DEAL_TYPES) + 2 :]:
        frame[name] = pd.to_numeric(deals[name], errors="coerce").astype("float64")
    return frame.loc[:, list(DEAL_FEATURES)].to_numpy(dtype="float64", na_value=np.nan)


@dataclass
class DealEvaluation:
    train_deals: int
    validation_deals: int
    validation_from: str
    win_rate_train: float
    roc_auc: float


def expected_close(created_on: date, deal_type: str, cycles: dict[str, np.ndarray], as_of: date) -> date:
    """Creation plus the median sales cycle of won deals of its type; past that age, the median of the longer
    cycles; with no such history, a week from now. `cycles` are sorted: the longer ones are a suffix, whose
    median is read off its middle (one search per deal, not a pass over every won deal)."""
    age = (as_of - created_on).days
    history = cycles.get(deal_type, np.array([]))
    longer = history[np.searchsorted(history, age, side="right") :]
    if len(longer) == 0:
        return as_of + timedelta(days=7)
    middle = len(longer) // 2
    median = longer[middle] if len(longer) % 2 else (longer[middle - 1] + longer[middle]) / 2
    return max(as_of, created_on + timedelta(days=int(median)))


# Where a customer's rank is read (doc block customer_rank); a warehouse built only up to the features (the score
# tests' and benchmarks') has none, and every deal is then compared with its whole type.
RANKS = "intermediate.int_customers_scored"
NO_RANKS = "(SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS customer_rank WHERE false)"

# The won deals' sales cycles, for the expected close month: no joins, three columns.
WON_SQL = """
SELECT deal_type, created_at, closed_at FROM staging.stg_crm__deals WHERE CAST(created_at AS DATE) <= $as_of AND is_won
"""


def _with_ranks(con: Connection, sql: str) -> str:
    return sql.replace("__RANKS__", RANKS if table_exists(con, *RANKS.split(".")) else NO_RANKS)


def _deals(con: Connection, as_of: date, *, closed: bool) -> pd.DataFrame:
    """The deals created by the as-of date with their inputs, closed ones (training) or open ones (forecast) only:
    each reader reads its half, so the 1.8M deals of 1M customers are never all in memory (docs/scores.md)."""
    return con.execute(_with_ranks(con, DEALS_SQL), {"as_of": as_of, "closed": closed}).df()


def closed_deals(con: Connection, as_of: date) -> pd.DataFrame:
    """What train_deal_model learns from: the deals closed (won or lost) and created by the as-of date, with the
    columns it reads (TRAINING_COLUMNS)."""
    return con.execute(CLOSED_DEALS_SQL, {"as_of": as_of, "closed": True}).df()


def train_deal_model(
    closed: pd.DataFrame, kind: KindSetting, seed: int
) -> tuple[Any | None, DealEvaluation | None, KindChoice | None]:
    """The win classifier on the deals closed by the as-of date (`closed`: closed_deals), validated on the latest
    quarter of them by creation time and refit on all, with its kind chosen on that validation
    (model.choose_kind); None when the history holds no win or no loss."""
    closed = closed.reset_index(drop=True)
    if not len(closed) or closed["is_won"].nunique() != 2:
        return None, None, None
    if len(closed) > MAX_TRAINING_ROWS:
        # a uniform sample keeps the win rate, so the calibration stays honest (as for the customer scores)
        closed = closed.sample(n=MAX_TRAINING_ROWS, random_state=seed)
    closed = closed.sort_values(["created_at", "deal_id"], kind="stable").reset_index(drop=True)
    x, y = deal_matrix(closed), closed["is_won"].astype(int).to_numpy()
    groups = closed["customer_id"].to_numpy()
    cut = int(len(closed) * 0.75)

    def validate(candidate: ModelKind) -> float:
        held_out = fit_calibrated(x[:cut], y[:cut], groups[:cut], candidate, seed)
        return roc_auc(y[cut:], held_out.predict_proba(x[cut:])[:, 1])

    evaluation: DealEvaluation | None = None
    if 0 < y[:cut].mean() < 1 and 0 < y[cut:].mean() < 1:
        choice = choose_kind(kind, validate)
        evaluation = DealEvaluation(
            train_deals=cut,
            validation_deals=len(closed) - cut,
            validation_from=str(closed["created_at"].iloc[cut]),
            win_rate_train=float(y[:cut].mean()),
            roc_auc=choice.roc_auc[choice.kind],
        )
    else:
        choice = choose_kind(kind, None)
    return fit_calibrated(x, y, groups, choice.kind, seed), evaluation, choice


def forecast_deals(con: Connection, as_of: date, model: Any | None) -> pd.DataFrame:
    """One row per open deal (no closed_at) created by the as-of date; win probability from `model` (a model
    trained as of this date or earlier: train_deal_model), missing without one."""
    open_deals = _deals(con, as_of, closed=False)
    probability = np.full(len(open_deals), np.nan)
    if model is not None and len(open_deals):
        probability = model.predict_proba(deal_matrix(open_deals))[:, 1]

    won = con.execute(WON_SQL, {"as_of": as_of}).df()
    cycle_days = (pd.to_datetime(won["closed_at"]) - pd.to_datetime(won["created_at"])).dt.days
    # one pass over the won deals' types (1.6M at 1M customers), not one comparison of strings per type
    codes, types = pd.factorize(won["deal_type"])
    code = {t: i for i, t in enumerate(types.tolist())}
    cycles = {t: np.sort(cycle_days[codes == code.get(t, -2)].dropna().to_numpy()) for t in DEAL_TYPES}
    forecasts = _forecast_columns(open_deals, probability, cycles, as_of)
    open_deals["days_since_last_activity"] = forecasts["days_since_last_activity"]
    actions = deal_next_actions(
        open_deals, _signals(con), con.execute(_with_ranks(con, PRECEDING_SQL), {"as_of": as_of}).df()
    )
    return pd.concat([forecasts, actions], axis=1).loc[:, list(FORECAST_COLUMNS)]


def _expected_close_days(age: np.ndarray, history: np.ndarray) -> np.ndarray:
    """expected_close's median cycle for many deals of one type at once (NaN: no longer cycle, a week from now)."""
    start = np.searchsorted(history, age, side="right")
    left = len(history) - start
    middle = start + left // 2
    upper = history[np.minimum(middle, len(history) - 1)] if len(history) else np.zeros(len(age))
    lower = history[np.clip(middle - 1, 0, None)] if len(history) else np.zeros(len(age))
    median = np.where(left % 2 == 1, upper, (lower + upper) / 2)
    return np.where(left > 0, np.trunc(median), np.nan)


def _forecast_columns(
    deals: pd.DataFrame, probability: np.ndarray, cycles: dict[str, np.ndarray], as_of: date
) -> pd.DataFrame:
    """Per open deal, in its order: win probability, expected close month and amount, last activity day, days
    since it and the activity band; what expected_close and activity_band say, computed column-wise."""
    created_on = pd.to_datetime(deals["created_at"]).dt.normalize()
    last_touch = pd.to_datetime(deals["last_touch_at"]).dt.normalize()
    last_activity = created_on.where(~(last_touch > created_on), last_touch)
    today = pd.Timestamp(as_of)
    days = (today - last_activity).dt.days.to_numpy()
    age = (today - created_on).dt.days.to_numpy()
    cycle = np.full(len(deals), np.nan)
    types = deals["deal_type"].astype(str).to_numpy()
    for deal_type in np.unique(types):
        of_type = types == deal_type
        cycle[of_type] = _expected_close_days(age[of_type], cycles.get(deal_type, np.array([])))
    close = created_on + pd.to_timedelta(np.nan_to_num(cycle), unit="D")
    close = close.where(close > today, today).where(~np.isnan(cycle), today + pd.Timedelta(days=7))
    amount = deals["amount"].astype(float).to_numpy()
    bands = np.select([days <= upper for upper, _ in ACTIVITY_BANDS], [band for _, band in ACTIVITY_BANDS], "red")
    return pd.DataFrame(
        {
            "deal_id": deals["deal_id"].to_numpy(),
            "customer_id": deals["customer_id"].to_numpy(),
            "deal_type": deals["deal_type"].to_numpy(),
            "stage": deals["stage"].to_numpy(),
            "amount": amount,
            "created_at": deals["created_at"].to_numpy(),
            "win_probability": probability,
            "expected_close_month": (close - pd.to_timedelta(close.dt.day - 1, unit="D")).dt.date.to_numpy(),
            # None, not NaN, where there is no probability (as the mart has always had it)
            "expected_amount": [None if v != v else v for v in (amount * probability).tolist()],
            "last_activity_on": last_activity.dt.date.to_numpy(),
            "days_since_last_activity": days,
            "activity_band": bands.astype(object),
        },
        columns=list(FORECAST_COLUMNS[:-4]),
    )


def _signals(con: Connection) -> pd.DataFrame:
    """The open deals' customers' signals (none before the first dbt build of marts.customer_signals)."""
    if not table_exists(con, "marts", "customer_signals"):
        return pd.DataFrame(columns=list(SIGNAL_COLUMNS))
    return con.execute(SIGNALS_SQL).df()


FORECAST_COLUMNS = (
    "deal_id",
    "customer_id",
    "deal_type",
    "stage",
    "amount",
    "created_at",
    "win_probability",
    "expected_close_month",
    "expected_amount",
    "last_activity_on",
    "days_since_last_activity",
    "activity_band",
    "next_action_en",
    "next_action_ja",
    "risk_en",
    "risk_ja",
)
