"""The customer features the scores use, how each reads in words, and loading them from the warehouse."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kizuna.core.connection import Connection
from kizuna.core.sql_dialect import dialect_of

FEATURES_TABLE = "intermediate.int_customer_features_monthly"


def _pct(value: float) -> str:
    return f"{abs(value):.0%}"


def _whole(value: float, thousands: bool = False) -> str:
    """A count or a number of days as words show it: no decimals, and never "-0" (a rounded small negative)."""
    text = f"{value:,.0f}" if thousands else f"{value:.0f}"
    return "0" if text == "-0" else text


def _count(value: float, one: str, many: str, thousands: bool = False) -> str:
    """The number and its noun, agreeing with the number as shown: '1 touch', '3 touches'."""
    text = _whole(value, thousands)
    return f"{text} {one if text == '1' else many}"


@dataclass(frozen=True)
class Feature:
    """One model input and its plain-words phrase in English and Japanese, given the customer's value."""

    name: str
    en: Callable[[float], str]
    ja: Callable[[float], str]
    missing_en: str = ""
    missing_ja: str = ""

    def phrase(self, value: float, locale: str) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return self.missing_ja if locale == "ja" else self.missing_en
        return self.ja(value) if locale == "ja" else self.en(value)


def _up_down(value: float, en_subject: str, ja_subject: str, en_tail: str, ja_tail: str) -> tuple[str, str]:
    word_en, word_ja = ("up", "増加") if value >= 0 else ("down", "減少")
    return f"{en_subject} {word_en} {_pct(value)} {en_tail}".strip(), f"{ja_subject}{ja_tail}{_pct(value)}{word_ja}"


FEATURES: tuple[Feature, ...] = (
    Feature(
        "usage_vs_3_month_average",
        lambda v: _up_down(v, "usage", "利用", "against its 3-month average", "が直近3か月平均より")[0],
        lambda v: _up_down(v, "usage", "利用", "against its 3-month average", "が直近3か月平均より")[1],
        "no usage history",
        "利用実績なし",
    ),
    Feature(
        "plan_usage_ratio",
        lambda v: f"plan at {v:.0%} of its limit",
        lambda v: f"プラン上限の{v:.0%}まで利用",
        "no plan limit",
        "プラン上限なし",
    ),
    Feature(
        "days_since_last_touch",
        lambda v: f"no touch for {_count(v, 'day', 'days')}",
        lambda v: f"{_whole(v)}日間接触なし",
        "never touched",
        "接触記録なし",
    ),
    Feature(
        "touches_last_90_days",
        lambda v: f"{_count(v, 'touch', 'touches')} in 90 days",
        lambda v: f"直近90日の接触{_whole(v)}回",
    ),
    Feature(
        "conversations_last_90_days",
        lambda v: f"{_count(v, 'conversation', 'conversations')} in 90 days",
        lambda v: f"直近90日の会話{_whole(v)}回",
    ),
    Feature(
        "tickets_last_90_days",
        lambda v: f"{_count(v, 'support ticket', 'support tickets')} in 90 days",
        lambda v: f"直近90日の問い合わせ{_whole(v)}件",
    ),
    Feature(
        "mrr",
        lambda v: f"MRR ¥{_whole(v, thousands=True)}",
        lambda v: f"MRR {_whole(v, thousands=True)}円",
    ),
    Feature(
        "mrr_change_3_months_ratio",
        lambda v: _up_down(v, "MRR", "MRR", "in 3 months", "が3か月で")[0],
        lambda v: _up_down(v, "MRR", "MRR", "in 3 months", "が3か月で")[1],
        "MRR new within 3 months",
        "MRR発生から3か月未満",
    ),
    Feature(
        "mrr_percentile",
        lambda v: f"MRR above {v:.0%} of customers",
        lambda v: f"MRRが顧客の{v:.0%}を上回る",
    ),
    Feature(
        "tenure_months",
        lambda v: f"customer for {_count(v, 'month', 'months')}",
        lambda v: f"契約{_whole(v)}か月目",
    ),
    Feature(
        "expansions_last_6_months",
        lambda v: f"{_count(v, 'expansion', 'expansions')} in 6 months",
        lambda v: f"直近6か月の拡大{_whole(v)}回",
    ),
    Feature(
        "contractions_last_6_months",
        lambda v: f"{_count(v, 'contraction', 'contractions')} in 6 months",
        lambda v: f"直近6か月の縮小{_whole(v)}回",
    ),
    Feature(
        "employee_count",
        lambda v: _count(v, "employee", "employees", thousands=True),
        lambda v: f"従業員{_whole(v, thousands=True)}名",
        "company size unknown",
        "従業員数不明",
    ),
    Feature(
        "product_count",
        lambda v: f"{_count(v, 'product', 'products')} held",
        lambda v: f"{_whole(v)}製品を契約中",
    ),
    Feature(
        "contract_term_months",
        lambda v: f"{_whole(v)}-month contract",
        lambda v: f"{_whole(v)}か月契約",
        "contract term unknown",
        "契約期間不明",
    ),
    Feature(
        "days_to_renewal",
        lambda v: f"renewal in {_count(v, 'day', 'days')}",
        lambda v: f"更新まで{_whole(v)}日",
        "no renewal date",
        "更新日なし",
    ),
    Feature(
        "open_expansion_deals",
        lambda v: _count(v, "open upsell or cross-sell deal", "open upsell or cross-sell deals"),
        lambda v: f"アップセル・クロスセル商談{_whole(v)}件進行中",
    ),
    Feature(
        "open_renewal_deals",
        lambda v: _count(v, "open renewal deal", "open renewal deals"),
        lambda v: f"更新商談{_whole(v)}件進行中",
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
TARGETS = {"churn": "is_churned_next_90_days", "expansion": "is_expanded_next_90_days"}

# Product mix: which products (with their plan) a customer pays for, one 0/1 input per product. The warehouse
# names the products, so the inputs are chosen at training: those held in at least MIN_PRODUCT_SHARE of the
# training rows, the PRODUCT_FEATURES_MAX most held.
PRODUCTS_COLUMN = "products_held"
PRODUCT_SEPARATOR = "|"
PRODUCT_FEATURES_MAX = 12
MIN_PRODUCT_SHARE = 0.005


def product_feature(label: str) -> Feature:
    """Holding one product: a 0/1 input whose phrase names the product."""
    return Feature(
        f"holds:{label}",
        lambda v: f"holds {label}" if v >= 0.5 else f"without {label}",
        lambda v: f"{label}を契約中" if v >= 0.5 else f"{label}未契約",
    )


def _product_sets(frame: pd.DataFrame) -> tuple[np.ndarray, list[frozenset[str]]]:
    """Per row an index into the distinct product sets (few: the work is per set, not per row)."""
    codes, uniques = pd.factorize(frame[PRODUCTS_COLUMN].fillna(""), sort=True)
    return codes, [frozenset(p for p in str(u).split(PRODUCT_SEPARATOR) if p) for u in uniques]


def choose_products(frame: pd.DataFrame) -> tuple[str, ...]:
    """The products that become inputs: held in at least MIN_PRODUCT_SHARE of the rows, the most held first."""
    codes, sets = _product_sets(frame)
    rows_per_set = np.bincount(codes, minlength=len(sets))
    held: dict[str, int] = {}
    for products, rows in zip(sets, rows_per_set, strict=True):
        for product in products:
            held[product] = held.get(product, 0) + int(rows)
    enough = [(-rows, label) for label, rows in held.items() if rows >= MIN_PRODUCT_SHARE * len(frame)]
    return tuple(label for _, label in sorted(enough)[:PRODUCT_FEATURES_MAX])


def feature_set(products: tuple[str, ...]) -> tuple[Feature, ...]:
    """The model's inputs in matrix order: the fixed features, then one per chosen product."""
    return FEATURES + tuple(product_feature(p) for p in products)


# Training rows beyond this are a uniform sample of customers (all their snapshots): the outcome rates, and so
# the calibration, stay those of the whole warehouse, and a customer's months stay together for the grouped
# calibration folds. About 2 minutes of training for both scores on 2 cores (docs/scores.md, bench/scores).
MAX_TRAINING_ROWS = 1_500_000
# Only what the models read: 1M customers x 25 snapshots with every column do not fit in memory.
COLUMNS = ("customer_id", "snapshot_on", "is_scoring_snapshot", *FEATURE_NAMES, PRODUCTS_COLUMN, *TARGETS.values())


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame["snapshot_on"] = pd.to_datetime(frame["snapshot_on"]).dt.date
    for name in FEATURE_NAMES:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return frame


def load_training_rows(con: Connection, seed: int, max_rows: int = MAX_TRAINING_ROWS) -> tuple[pd.DataFrame, int]:
    """The labelled snapshots (has_outcome), every one or a uniform sample of customers when there are more than
    max_rows; and how many labelled rows there are in all."""
    columns = ", ".join(COLUMNS)
    row = con.execute(f"SELECT count(*), count(*) FILTER (WHERE has_outcome) FROM {FEATURES_TABLE}").fetchone()
    if not row or not row[0]:
        raise ValueError(f"{FEATURES_TABLE} is empty: run `kizuna run` (dbt build) on a warehouse with customers first")
    labelled = int(row[1])
    sample = ""
    dialect = dialect_of(con)
    if labelled > max_rows:
        # a bucket of id and seed: the same customers every run with the same seed, whatever the row order, and on
        # either engine (MD5, where DuckDB's hash may change with its version)
        bucket = dialect.bucket_of(f"customer_id || '#{int(seed)}'")
        sample = f"AND {bucket} < {int(max_rows / labelled * 2**32)}"
    frame = con.execute(
        f"SELECT {columns} FROM {FEATURES_TABLE} WHERE has_outcome {sample} "
        f"ORDER BY snapshot_on, {dialect.byte_order('customer_id')}"
    ).df()
    return _typed(frame), labelled


def load_scoring_rows(con: Connection) -> pd.DataFrame:
    """The as-of snapshot: one row per customer to score."""
    columns = ", ".join(COLUMNS)
    order = dialect_of(con).byte_order("customer_id")
    frame = con.execute(f"SELECT {columns} FROM {FEATURES_TABLE} WHERE is_scoring_snapshot ORDER BY {order}").df()
    return _typed(frame)


def matrix(frame: pd.DataFrame, products: tuple[str, ...] = ()) -> np.ndarray:
    """The model's input: the features in feature_set(products) order, missing values as NaN."""
    fixed = frame.loc[:, list(FEATURE_NAMES)].to_numpy(dtype="float64", na_value=np.nan)
    if not products:
        return fixed
    codes, sets = _product_sets(frame)
    per_set = np.array([[float(p in held) for p in products] for held in sets]).reshape(len(sets), len(products))
    return np.hstack([fixed, per_set[codes]])
