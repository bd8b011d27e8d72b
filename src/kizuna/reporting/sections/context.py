"""What every section shares: the report context (connection, month, language, formats) and its result types."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from kizuna.core.connection import Connection
from kizuna.reporting.charts import Chart
from kizuna.reporting.sections.labels import LABELS, REASON_LABELS


@dataclass(frozen=True)
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]


@dataclass
class Section:
    key: str
    title: str
    sources: list[str]
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass
class ReportContext:
    """What every section needs: a read-only connection, the date, the language and where snapshots live."""

    con: Connection
    as_of: date
    lang: str
    currency: str
    snapshot_dir: Path
    _columns: dict[str, set[str]] = field(default_factory=dict)

    @cached_property
    def reporting_month(self) -> date:
        """The one month every section reports: the latest complete month (dbt doc block month_completeness).

        At most the month before the as-of month; earlier when the marts were built before that month closed
        (a stale warehouse says its own as-of month is still in progress). No section draws a later month.
        """
        first = self.as_of.replace(day=1)
        calendar = date(first.year - 1, 12, 1) if first.month == 1 else date(first.year, first.month - 1, 1)
        if "is_complete" not in self.columns("mrr_kpis_monthly"):
            return calendar  # marts built before is_complete existed: the calendar rule
        row = self.con.execute(
            "SELECT max(month) FROM marts.mrr_kpis_monthly WHERE is_complete AND month <= ?", [calendar]
        ).fetchone()
        return row[0] if row and row[0] else calendar

    def t(self, key: str, **values: Any) -> str:
        ja, en = LABELS[key]
        return (ja if self.lang == "ja" else en).format(**values)

    def columns(self, mart: str, schema: str = "marts") -> set[str]:
        key = f"{schema}.{mart}"
        if key not in self._columns:
            rows = self.con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
                [schema, mart],
            ).fetchall()
            self._columns[key] = {str(r[0]) for r in rows}
        return self._columns[key]

    def has(self, mart: str, schema: str = "marts") -> bool:
        return bool(self.columns(mart, schema))

    def require(self, section: Section, mart: str, *columns: str) -> bool:
        """True when the mart (and the columns) exist; otherwise records why the section is incomplete."""
        if not self.has(mart):
            section.missing.append(self.t("missing_mart", mart=mart))
            return False
        absent = [c for c in columns if c not in self.columns(mart)]
        for column in absent:
            section.missing.append(self.t("missing_column", mart=mart, column=column))
        return not absent

    def df(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        return self.con.execute(sql, list(params)).df()

    # -- formatting --------------------------------------------------------------------------------------

    @property
    def money_unit(self) -> tuple[float, str, str]:
        """Divisor, unit and number format for money in charts: 万円 reads naturally in Japanese, millions in
        English; with decimals, so a movement of a few thousand yen is not drawn as 0."""
        if self.currency == "JPY":
            return (10_000.0, "万円", ",.1f") if self.lang == "ja" else (1_000_000.0, "JPY m", ",.2f")
        return 1_000.0, f"k {self.currency}", ",.1f"

    def money(self, value: Any) -> str:
        if value is None or pd.isna(value):
            return "–"
        amount = float(value)
        if self.currency == "JPY":
            if self.lang == "ja":
                return f"{amount:,.0f}円"
            return f"-¥{-amount:,.0f}" if amount < 0 else f"¥{amount:,.0f}"
        return f"{amount:,.2f} {self.currency}"

    def pct(self, value: Any, digits: int = 1) -> str:
        if value is None or pd.isna(value):
            return "–"
        return f"{float(value) * 100:.{digits}f}%"

    def points(self, value: Any) -> str:
        """A difference of two rates, in percentage points with its sign (0.145 → +14.5 pt)."""
        if value is None or pd.isna(value):
            return "–"
        return f"{float(value) * 100:+.1f} pt"

    def number(self, value: Any) -> str:
        if value is None or pd.isna(value):
            return "–"
        return f"{float(value):,.0f}"

    def band_label(self, band: Any) -> str:
        """A band as people read it: the dbt band macro's 'unknown' (no value) in the report's language."""
        return self.t("band_unknown") if band == "unknown" else str(band)

    def reason(self, code: Any) -> str:
        """A churn reason as people read it: codes kizuna or Stripe write are translated, CRM text is kept."""
        labels = REASON_LABELS.get(str(code))
        return str(code) if labels is None else labels[0 if self.lang == "ja" else 1]

    def month_label(self, value: Any) -> str:
        return pd.Timestamp(value).strftime("%Y-%m")


def _iso(frame: pd.DataFrame, column: str = "month") -> pd.DataFrame:
    frame[column] = pd.to_datetime(frame[column]).dt.strftime("%Y-%m-%d")
    return frame


def long_series(frame: pd.DataFrame, ctx: ReportContext, columns: Sequence[str], scale: float = 1.0) -> pd.DataFrame:
    """month + one column per series → month, series (translated), value."""
    out = frame.melt(id_vars=["month"], value_vars=list(columns), var_name="series", value_name="value")
    out["series"] = out["series"].map(lambda c: ctx.t(c))
    out["value"] = out["value"].astype(float) / scale
    return _iso(out.dropna(subset=["value"]))
