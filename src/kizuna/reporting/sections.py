"""The KPI report's sections: each reads the marts it needs and says plainly which are not there yet."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from kizuna.reporting import charts
from kizuna.reporting.charts import Chart

log = logging.getLogger(__name__)

TREND_MONTHS = 24
COHORTS = 18

# One line per label: (Japanese, English).
LABELS: dict[str, tuple[str, str]] = {
    "title": ("既存顧客 KPI レポート", "Existing-customer KPI report"),
    "as_of": ("基準日", "As of"),
    "reporting_month": ("報告月", "Reporting month"),
    "in_progress": (
        "{month} は進行中です（{as_of} 時点の途中経過）。グラフと表は締まった最新の月 {reporting} までです",
        "{month} is in progress (month to date as of {as_of}): charts and tables stop at {reporting}, "
        "the latest complete month",
    ),
    "in_progress_stale": (
        "{month} はマート作成時点で進行中でした（途中経過）。グラフと表は締まった最新の月 {reporting} までです",
        "{month} was in progress when the marts were built (month to date): charts and tables stop at {reporting}, "
        "the latest complete month",
    ),
    "month": ("月", "Month"),
    "series": ("系列", "Series"),
    "missing_mart": ("まだ利用できません（マート {mart} がありません）", "not available yet (mart {mart} missing)"),
    "missing_column": (
        "まだ利用できません（マート {mart} に列 {column} がありません）",
        "not available yet (column {column} missing in mart {mart})",
    ),
    "no_rows": ("{mart} に {month} の行がありません", "{mart} has no row for {month}"),
    "sources": ("出典", "Sources"),
    "contents": ("目次", "Contents"),
    "warehouse": ("ウェアハウス", "Warehouse"),
    "png": ("PNG", "PNG"),
    "section_failed": ("このセクションの作成に失敗しました", "this section failed"),
    "stale": (
        "マートの最新月は {month} です（基準日の月より前：ウェアハウスが古い可能性があります）",
        "the marts' latest month is {month}, before the as-of month: the warehouse may be stale",
    ),
    "font_missing": (
        "日本語フォントが見つかりません：PNG の日本語が表示されない可能性があります（fonts-noto-cjk を導入）",
        "no Japanese font found: Japanese text in the PNGs may not render (install fonts-noto-cjk)",
    ),
    # bridge
    "bridge": ("MRR ブリッジ", "MRR bridge"),
    "starting_mrr": ("期首 MRR", "Starting MRR"),
    "new_mrr": ("新規", "New"),
    "expansion_mrr": ("拡大", "Expansion"),
    "reactivation_mrr": ("再開", "Reactivation"),
    "contraction_mrr": ("縮小", "Contraction"),
    "churned_mrr": ("解約", "Churn"),
    "fx_impact_mrr": ("為替", "FX"),
    "ending_mrr": ("期末 MRR", "Ending MRR"),
    "bridge_mismatch": (
        "内訳の合計が期末 MRR と {diff} 異なります",
        "the movements differ from ending MRR by {diff}",
    ),
    # trend
    "trend": ("MRR と ARR の推移", "MRR and ARR trend"),
    "mrr": ("MRR", "MRR"),
    "arr": ("ARR（MRR × 12）", "ARR (MRR × 12)"),
    "customers": ("顧客数", "Customers"),
    "arpa": ("顧客単価（ARPA）", "ARPA"),
    # retention
    "retention": ("NRR と GRR の推移", "NRR and GRR trend"),
    "nrr": ("NRR（月次）", "NRR (monthly)"),
    "grr": ("GRR（月次）", "GRR (monthly)"),
    "trailing_12m_nrr": ("NRR（直近12か月）", "NRR (trailing 12 months)"),
    "trailing_12m_grr": ("GRR（直近12か月）", "GRR (trailing 12 months)"),
    "monthly": ("月次", "Monthly"),
    "trailing": ("直近12か月", "Trailing 12 months"),
    "rate": ("率", "Rate"),
    # churn
    "churn": ("解約率", "Churn rates"),
    "customer_churn_rate": ("顧客解約率", "Customer churn rate"),
    "gross_revenue_churn_rate": ("グロス収益解約率", "Gross revenue churn rate"),
    "net_revenue_churn_rate": ("ネット収益解約率", "Net revenue churn rate"),
    # cohorts
    "cohorts": ("コホート継続率", "Cohort retention"),
    "cohort_month": ("開始月", "Cohort"),
    "months_since_start": ("経過月数", "Months since start"),
    "logo_retention_rate": ("顧客継続率", "Logo retention"),
    "net_mrr_retention_rate": ("MRR 継続率", "Net MRR retention"),
    # ranks
    "ranks": ("ランク A/B/C", "Rank A/B/C"),
    "rank": ("ランク", "Rank"),
    "rank_customers": ("ランク別の顧客数", "Customers by rank"),
    "rank_mrr": ("ランク別の MRR", "MRR by rank"),
    "share_of_mrr": ("MRR 構成比", "Share of MRR"),
    "rank_movement": ("ランクの移動（前回 {previous} → 今回）", "Rank movement (previous report {previous} → now)"),
    "previous_rank": ("前回のランク", "Previous rank"),
    "current_rank": ("今回のランク", "Current rank"),
    "no_rank": ("なし", "none"),
    "rank_basis": (
        "ランクは {as_of} 時点、顧客数と MRR は {month} の値です（{none}：{month} に契約があり現在ランクのない顧客）",
        "Ranks as of {as_of}; customers and MRR of {month} ({none}: paying then, without a rank now)",
    ),
    "no_snapshot": (
        "ランクの移動はまだ表示できません（前回のレポートの記録がありません；今回の記録を保存しました）",
        "rank movement not available yet (no earlier report recorded ranks; this one did)",
    ),
    # existing revenue
    "existing": ("既存顧客の売上（企業規模・継続期間別）", "Existing-customer revenue by company size and tenure"),
    "company_size": ("企業規模（従業員数）", "Company size (employees)"),
    "tenure": ("継続期間（月）", "Tenure (months)"),
    "existing_mrr": ("既存顧客 MRR", "Existing MRR"),
    "band": ("区分", "Band"),
    "band_unknown": ("不明", "unknown"),
    "starting_customers": ("期首顧客数", "Starting customers"),
    "churned_customers": ("解約顧客数", "Churned customers"),
    # churn reasons
    "reasons": ("解約理由（直近12か月）", "Churn reasons (last 12 months)"),
    "reason": ("理由", "Reason"),
    # inside sales
    "inside_sales": ("インサイドセールス KPI", "Inside-sales KPIs"),
    "activity": ("活動（アプローチ・有効会話）", "Activity (accounts approached, effective conversations)"),
    "intermediate": ("中間指標（CSQL・商談化）", "Intermediate (CSQLs, to opportunity)"),
    "final": ("成果（受注した拡大 MRR）", "Outcome (won expansion MRR)"),
    "accounts_approached": ("アプローチ顧客数", "Accounts approached"),
    "effective_conversations": ("有効会話数", "Effective conversations"),
    "csqls_created": ("CSQL 数", "CSQLs created"),
    "csqls_to_opportunity": ("商談化数", "CSQLs to opportunity"),
    "csql_to_opportunity_rate": ("商談化率", "CSQL → opportunity rate"),
    "won_expansion_mrr": ("受注した拡大 MRR", "Won expansion MRR"),
    "share_of_expansion_mrr": ("拡大 MRR に占める割合", "Share of expansion MRR"),
    "nrr_contribution": ("NRR への寄与", "NRR contribution"),
    "count": ("件数", "Count"),
    # campaigns
    "campaigns": ("キャンペーンの成果（配信群と対照群）", "Campaign performance (treatment vs holdout)"),
    "campaign": ("キャンペーン", "Campaign"),
    "variant": ("群", "Group"),
    "treatment": ("配信群", "treatment"),
    "holdout": ("対照群", "holdout"),
    "selected_customers": ("対象顧客数", "Customers"),
    "mrr_then": ("選定月の MRR", "MRR in selection month"),
    "mrr_now": ("現在の MRR", "MRR now"),
    "mrr_change": ("MRR 増減率", "MRR change"),
    "churned_since": ("その後の解約率", "Churned since"),
    "lift_chart": ("選定後の MRR 増減率", "MRR change since selection"),
    "no_lift": (
        "{month} までに選定され、選定月に MRR のある顧客がまだいないため、MRR 増減率は表示できません",
        "no MRR change to show yet: no campaign has customers selected by {month} who paid in their selection month",
    ),
    "no_holdout": (
        "対照群がまだありません（キャンペーンファイルの holdout_percent を設定してください）",
        "no holdout group yet (set holdout_percent in the campaign file)",
    ),
    "engagement": ("配信の反応", "Engagement"),
    "sent": ("送信数", "Sent"),
    "delivery_rate": ("到達率", "Delivery rate"),
    "human_open_rate": ("開封率", "Open rate"),
    "click_rate": ("クリック率", "Click rate"),
    "unsubscribe_rate": ("配信停止率", "Unsubscribe rate"),
    "run_id": ("実行 ID", "Run"),
    "template": ("テンプレート", "Template"),
    "locale": ("言語", "Locale"),
}

# Churn reasons that are codes rather than a CRM's words: kizuna's own (dbt doc block churn_reason), Stripe's
# cancellation_details (feedback, then reason; src/kizuna/connectors/stripe_mapping.py) and its period closes.
REASON_LABELS: dict[str, tuple[str, str]] = {
    "past_due": ("支払遅延（猶予期間の超過）", "Payment past due (grace period over)"),
    "unknown": ("理由の記録なし", "No reason recorded"),
    "too_expensive": ("価格が高い", "Too expensive"),
    "missing_features": ("機能不足", "Missing features"),
    "switched_service": ("他サービスへ移行", "Switched to another service"),
    "unused": ("利用していない", "Not used"),
    "customer_service": ("サポートへの不満", "Customer service"),
    "too_complex": ("使い方が難しい", "Too complex"),
    "low_quality": ("品質への不満", "Low quality"),
    "other": ("その他", "Other"),
    "cancellation_requested": ("解約の申し出", "Cancellation requested"),
    "payment_failed": ("支払の失敗", "Payment failed"),
    "payment_disputed": ("支払の異議申し立て", "Payment disputed"),
    "plan_change": ("プラン変更", "Plan change"),
    "item_removed": ("品目の削除", "Item removed"),
}


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

    con: duckdb.DuckDBPyConnection
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


def band_order(labels: Sequence[str], last: str = "unknown") -> list[str]:
    """Band labels such as '1-49', '50-299', '1000+' by their lower bound (as text, '1000+' would come second);
    `last` (no value known) and anything without a leading number after them."""

    def key(label: str) -> tuple[int, float, str]:
        match = re.match(r"\d+", label)
        if label == last:
            return (2, 0.0, label)
        return (0, float(match.group()), label) if match else (1, 0.0, label)

    return sorted(dict.fromkeys(labels), key=key)


def _iso(frame: pd.DataFrame, column: str = "month") -> pd.DataFrame:
    frame[column] = pd.to_datetime(frame[column]).dt.strftime("%Y-%m-%d")
    return frame


def _long(frame: pd.DataFrame, ctx: ReportContext, columns: Sequence[str], scale: float = 1.0) -> pd.DataFrame:
    """month + one column per series → month, series (translated), value."""
    out = frame.melt(id_vars=["month"], value_vars=list(columns), var_name="series", value_name="value")
    out["series"] = out["series"].map(lambda c: ctx.t(c))
    out["value"] = out["value"].astype(float) / scale
    return _iso(out.dropna(subset=["value"]))


def mrr_bridge(ctx: ReportContext) -> Section:
    section = Section("bridge", ctx.t("bridge"), ["mrr_kpis_monthly"])
    if not ctx.require(section, "mrr_kpis_monthly", "starting_mrr", "ending_mrr"):
        return section
    steps = ["new_mrr", "expansion_mrr", "reactivation_mrr", "contraction_mrr", "churned_mrr", "fx_impact_mrr"]
    present = [s for s in steps if s in ctx.columns("mrr_kpis_monthly")]
    for absent in sorted(set(steps) - set(present)):
        section.missing.append(ctx.t("missing_column", mart="mrr_kpis_monthly", column=absent))
    cols = ", ".join(f"{c}::DOUBLE AS {c}" for c in ["starting_mrr", *present, "ending_mrr"])
    month = ctx.reporting_month
    frame = ctx.df(f"SELECT {cols} FROM marts.mrr_kpis_monthly WHERE month = ?", [month])
    if frame.empty:
        section.notes.append(ctx.t("no_rows", mart="mrr_kpis_monthly", month=month.strftime("%Y-%m")))
        return section
    row = frame.iloc[0]
    divisor, unit, fmt = ctx.money_unit
    signs = {"contraction_mrr": -1.0, "churned_mrr": -1.0}  # stored as positive amounts lost
    starting, ending = float(row["starting_mrr"]), float(row["ending_mrr"])
    bridge = [(ctx.t("starting_mrr"), starting / divisor, "total", ctx.money(starting))]
    total = starting
    for step in present:
        amount = signs.get(step, 1.0) * float(row[step] or 0.0)
        total += amount
        bridge.append((ctx.t(step), amount / divisor, "change", ctx.money(amount)))
    bridge.append((ctx.t("ending_mrr"), ending / divisor, "total", ctx.money(ending)))
    title = f"{ctx.t('bridge')} {month.strftime('%Y-%m')}"
    section.charts.append(
        Chart("mrr_bridge", title, charts.waterfall(bridge, title=title, value_title=unit, value_format=fmt))
    )
    section.tables.append(
        Table(
            title,
            [ctx.t("series"), ctx.t("mrr")],
            [[ctx.t("starting_mrr"), ctx.money(row["starting_mrr"])]]
            + [[ctx.t(s), ctx.money(signs.get(s, 1.0) * float(row[s] or 0.0))] for s in present]
            + [[ctx.t("ending_mrr"), ctx.money(row["ending_mrr"])]],
            [False, True],
        )
    )
    diff = float(row["ending_mrr"]) - total
    if abs(diff) >= 1:
        section.notes.append(ctx.t("bridge_mismatch", diff=ctx.money(diff)))
    return section


def _kpi_trend(ctx: ReportContext, columns: Sequence[str]) -> pd.DataFrame:
    present = [c for c in columns if c in ctx.columns("mrr_kpis_monthly")]
    cols = ", ".join(f"{c}::DOUBLE AS {c}" for c in present)
    return ctx.df(
        f"SELECT month, {cols} FROM marts.mrr_kpis_monthly WHERE month <= ? ORDER BY month DESC LIMIT ?",
        [ctx.reporting_month, TREND_MONTHS],
    ).sort_values("month")


def mrr_trend(ctx: ReportContext) -> Section:
    section = Section("trend", ctx.t("trend"), ["mrr_kpis_monthly"])
    if not ctx.require(section, "mrr_kpis_monthly", "ending_mrr"):
        return section
    frame = _kpi_trend(ctx, ["ending_mrr", "ending_customers", "arpa"])
    frame["mrr"] = frame["ending_mrr"]
    frame["arr"] = frame["ending_mrr"] * 12
    divisor, unit, money_format = ctx.money_unit
    for key in ("mrr", "arr"):
        section.charts.append(
            Chart(
                f"{key}_trend",
                ctx.t(key),
                charts.lines(
                    _long(frame, ctx, [key], divisor),
                    title=ctx.t(key),
                    value_title=unit,
                    value_format=money_format,
                    x_title=ctx.t("month"),
                    series_title=ctx.t("series"),
                ),
            )
        )
    recent = frame.tail(6).iloc[::-1]
    headers = [ctx.t("month"), ctx.t("mrr"), ctx.t("arr")]
    extra = [c for c in ("ending_customers", "arpa") if c in frame]
    headers += [ctx.t("customers") if c == "ending_customers" else ctx.t("arpa") for c in extra]
    rows = [
        [ctx.month_label(r.month), ctx.money(r.mrr), ctx.money(r.arr)]
        + [ctx.number(r.ending_customers) if c == "ending_customers" else ctx.money(r.arpa) for c in extra]
        for r in recent.itertuples()
    ]
    section.tables.append(Table(ctx.t("trend"), headers, rows, [False] + [True] * (len(headers) - 1)))
    return section


def _rate_lines(ctx: ReportContext, section: Section, name: str, title: str, columns: Sequence[str]) -> None:
    present = [c for c in columns if c in ctx.columns("mrr_kpis_monthly")]
    for absent in [c for c in columns if c not in present]:
        section.missing.append(ctx.t("missing_column", mart="mrr_kpis_monthly", column=absent))
    if not present:
        return
    frame = _kpi_trend(ctx, present)
    section.charts.append(
        Chart(
            name,
            title,
            charts.lines(
                _long(frame, ctx, present),
                title=title,
                value_title=ctx.t("rate"),
                value_format=".1%",
                x_title=ctx.t("month"),
                series_title=ctx.t("series"),
            ),
        )
    )
    last = frame[frame["month"] == pd.Timestamp(ctx.reporting_month)]
    if not last.empty:
        row = last.iloc[0]
        section.tables.append(
            Table(
                f"{title} {ctx.reporting_month.strftime('%Y-%m')}",
                [ctx.t(c) for c in present],
                [[ctx.pct(row[c]) for c in present]],
                [True] * len(present),
            )
        )


def retention(ctx: ReportContext) -> Section:
    section = Section("retention", ctx.t("retention"), ["mrr_kpis_monthly"])
    if not ctx.require(section, "mrr_kpis_monthly"):
        return section
    _rate_lines(ctx, section, "nrr_grr_monthly", f"{ctx.t('retention')}: {ctx.t('monthly')}", ["nrr", "grr"])
    _rate_lines(
        ctx,
        section,
        "nrr_grr_trailing",
        f"{ctx.t('retention')}: {ctx.t('trailing')}",
        ["trailing_12m_nrr", "trailing_12m_grr"],
    )
    return section


def churn_rates(ctx: ReportContext) -> Section:
    section = Section("churn", ctx.t("churn"), ["mrr_kpis_monthly"])
    if ctx.require(section, "mrr_kpis_monthly"):
        columns = ["customer_churn_rate", "gross_revenue_churn_rate", "net_revenue_churn_rate"]
        _rate_lines(ctx, section, "churn_rates", ctx.t("churn"), columns)
    return section


def cohort_retention(ctx: ReportContext) -> Section:
    section = Section("cohorts", ctx.t("cohorts"), ["cohort_retention_monthly"])
    needed = ("cohort_month", "months_since_start", "logo_retention_rate")
    if not ctx.require(section, "cohort_retention_monthly", *needed):
        return section
    rates = [
        c for c in ("logo_retention_rate", "net_mrr_retention_rate") if c in ctx.columns("cohort_retention_monthly")
    ]
    frame = ctx.df(
        f"""SELECT cohort_month, months_since_start, {", ".join(rates)}
            FROM marts.cohort_retention_monthly
            WHERE cohort_month >= ?::DATE - to_months(?) AND months_since_start <= ? AND month <= ?""",
        [ctx.reporting_month, COHORTS - 1, COHORTS - 1, ctx.reporting_month],
    )
    frame["y"] = pd.to_datetime(frame["cohort_month"]).dt.strftime("%Y-%m")
    frame["x"] = frame["months_since_start"].astype(int)
    for rate in rates:
        data = frame[["x", "y", rate]].rename(columns={rate: "value"}).dropna()
        data["value"] = data["value"].astype(float)
        title = f"{ctx.t('cohorts')}: {ctx.t(rate)}"
        section.charts.append(
            Chart(
                f"cohort_{rate}",
                title,
                charts.heatmap(
                    data,
                    title=title,
                    x_title=ctx.t("months_since_start"),
                    y_title=ctx.t("cohort_month"),
                    value_title=ctx.t(rate),
                    value_format=".0%",
                ),
            )
        )
    return section


def _rank_snapshot_path(ctx: ReportContext, as_of: date) -> Path:
    return ctx.snapshot_dir / f"ranks-{as_of.isoformat()}.csv"


def ranks(ctx: ReportContext) -> Section:
    section = Section("ranks", ctx.t("ranks"), ["customers", "customer_mrr_monthly"])
    if not ctx.require(section, "customers", "rank", "status", "mrr"):
        return section
    none = ctx.t("no_rank")
    month = ctx.reporting_month
    if ctx.require(section, "customer_mrr_monthly", "customer_id", "month", "mrr", "is_customer"):
        # Ranks are today's (the customers mart keeps no history), counts and MRR the reporting month's, so
        # the totals are the headline's; customers paying then but without a rank now show as "none".
        frame = ctx.df(
            """SELECT coalesce(c.rank, ?) AS rank, count(*) AS customers, sum(m.mrr)::DOUBLE AS mrr
               FROM marts.customer_mrr_monthly m LEFT JOIN marts.customers c ON c.customer_id = m.customer_id
               WHERE m.month = ? AND m.is_customer GROUP BY ALL ORDER BY rank""",
            [none, month],
        )
        section.notes.append(ctx.t("rank_basis", as_of=ctx.as_of.isoformat(), month=month.strftime("%Y-%m"), none=none))
    else:
        frame = ctx.df(
            """SELECT rank, count(*) AS customers, sum(mrr)::DOUBLE AS mrr FROM marts.customers
               WHERE status = 'active' AND rank IS NOT NULL GROUP BY rank ORDER BY rank"""
        )
    frame["category"] = frame["rank"]
    divisor, unit, money_format = ctx.money_unit
    section.charts.append(
        Chart(
            "rank_customers",
            ctx.t("rank_customers"),
            charts.bars(
                frame.assign(value=frame["customers"].astype(float)),
                title=f"{ctx.t('rank_customers')} {month:%Y-%m}",
                category_title=ctx.t("rank"),
                value_title=ctx.t("customers"),
                value_format=",.0f",
                sort=["A", "B", "C", none],
            ),
        )
    )
    section.charts.append(
        Chart(
            "rank_mrr",
            ctx.t("rank_mrr"),
            charts.bars(
                frame.assign(value=frame["mrr"] / divisor),
                title=f"{ctx.t('rank_mrr')} {month:%Y-%m}",
                category_title=ctx.t("rank"),
                value_title=unit,
                value_format=money_format,
                sort=["A", "B", "C", none],
            ),
        )
    )
    total = float(frame["mrr"].sum()) or 1.0
    section.tables.append(
        Table(
            f"{ctx.t('ranks')} {month:%Y-%m}",
            [ctx.t("rank"), ctx.t("customers"), ctx.t("mrr"), ctx.t("share_of_mrr")],
            [[r.rank, ctx.number(r.customers), ctx.money(r.mrr), ctx.pct(r.mrr / total)] for r in frame.itertuples()],
            [False, True, True, True],
        )
    )
    _rank_movement(ctx, section)
    return section


def _rank_movement(ctx: ReportContext, section: Section) -> None:
    """Movement between this report's ranks and those the latest earlier report recorded (the mart has no history)."""
    current = ctx.df("SELECT customer_id, rank FROM marts.customers")
    ctx.snapshot_dir.mkdir(parents=True, exist_ok=True)
    earlier = sorted(
        p for p in ctx.snapshot_dir.glob("ranks-*.csv") if p.stem.removeprefix("ranks-") < ctx.as_of.isoformat()
    )
    current.to_csv(_rank_snapshot_path(ctx, ctx.as_of), index=False)
    if not earlier:
        section.notes.append(ctx.t("no_snapshot"))
        return
    previous_path = earlier[-1]
    previous = pd.read_csv(previous_path, dtype=str, keep_default_na=False)
    none = ctx.t("no_rank")
    merged = previous.merge(current, on="customer_id", how="outer", suffixes=("_before", "_now"))
    merged = merged.fillna({"rank_before": none, "rank_now": none}).replace({"rank_before": {"": none}})
    merged["rank_now"] = merged["rank_now"].fillna(none)
    moves = merged.groupby(["rank_before", "rank_now"]).size().reset_index(name="value")
    moves = moves[(moves["rank_before"] != none) | (moves["rank_now"] != none)]
    previous_day = previous_path.stem.removeprefix("ranks-")
    title = ctx.t("rank_movement", previous=previous_day)
    order = ["A", "B", "C", none]
    section.charts.append(
        Chart(
            "rank_movement",
            title,
            charts.heatmap(
                moves.rename(columns={"rank_now": "x", "rank_before": "y"}).assign(value=lambda d: d["value"] * 1.0),
                title=title,
                x_title=ctx.t("current_rank"),
                y_title=ctx.t("previous_rank"),
                value_title=ctx.t("customers"),
                value_format=",.0f",
                text=True,
                x_sort=order,
                y_sort=order,
            ),
        )
    )


def existing_revenue(ctx: ReportContext) -> Section:
    mart = "existing_customer_revenue_monthly"
    section = Section("existing", ctx.t("existing"), [mart])
    if not ctx.require(section, mart, "breakdown", "band", "existing_mrr"):
        return section
    month = ctx.reporting_month
    optional = [c for c in ("starting_customers", "churned_customers", "customer_churn_rate", "nrr", "grr")]
    optional = [c for c in optional if c in ctx.columns(mart)]
    extra = "".join(f", {c}::DOUBLE AS {c}" for c in optional)
    frame = ctx.df(
        f"""SELECT breakdown, band, existing_mrr::DOUBLE AS existing_mrr{extra}
            FROM marts.{mart} WHERE month = ? AND breakdown IN ('company_size', 'tenure') ORDER BY breakdown, band""",
        [month],
    )
    if frame.empty:
        section.notes.append(ctx.t("no_rows", mart=mart, month=month.strftime("%Y-%m")))
        return section
    divisor, unit, money_format = ctx.money_unit
    for breakdown in ("company_size", "tenure"):
        part = frame[frame["breakdown"] == breakdown]
        if part.empty:
            continue
        # Bands in numeric order (1-49, 50-299, 300-999, 1000+, unknown last), whatever the dbt vars' bounds.
        part = part.assign(band=part["band"].map(ctx.band_label))
        bands = band_order([str(b) for b in part["band"]], last=ctx.t("band_unknown"))
        part = part.set_index("band", drop=False).loc[bands]
        title = f"{ctx.t('existing_mrr')}: {ctx.t(breakdown)} {month.strftime('%Y-%m')}"
        section.charts.append(
            Chart(
                f"existing_mrr_{breakdown}",
                title,
                charts.bars(
                    part.assign(category=part["band"], value=part["existing_mrr"] / divisor),
                    title=title,
                    category_title=ctx.t(breakdown),
                    value_title=unit,
                    value_format=money_format,
                    sort=bands,
                ),
            )
        )
        formats: dict[str, Callable[[Any], str]] = {
            "starting_customers": ctx.number,
            "churned_customers": ctx.number,
            "customer_churn_rate": ctx.pct,
            "nrr": ctx.pct,
            "grr": ctx.pct,
        }
        section.tables.append(
            Table(
                title,
                [ctx.t(breakdown), ctx.t("existing_mrr")] + [ctx.t(c) for c in optional],
                [
                    [str(r["band"]), ctx.money(r["existing_mrr"])] + [formats[c](r[c]) for c in optional]
                    for _, r in part.iterrows()
                ],
                [False] + [True] * (1 + len(optional)),
            )
        )
    return section


def churn_reasons(ctx: ReportContext) -> Section:
    mart = "existing_customer_revenue_monthly"
    section = Section("reasons", ctx.t("reasons"), [mart])
    if not ctx.require(section, mart, "breakdown", "band", "churned_customers"):
        return section
    first = date(ctx.reporting_month.year - 1, ctx.reporting_month.month, 1)
    churned_mrr = ", sum(churned_mrr)::DOUBLE AS churned_mrr" if "churned_mrr" in ctx.columns(mart) else ""
    frame = ctx.df(
        f"""SELECT band AS reason, sum(churned_customers)::DOUBLE AS churned_customers{churned_mrr}
            FROM marts.{mart} WHERE breakdown = 'cancel_reason' AND month > ? AND month <= ?
            GROUP BY band HAVING sum(churned_customers) > 0 ORDER BY churned_customers DESC""",
        [first, ctx.reporting_month],
    )
    if frame.empty:
        section.notes.append(ctx.t("no_rows", mart=mart, month=ctx.reporting_month.strftime("%Y-%m")))
        return section
    # Codes in people's words; a code and a CRM text may read the same, so add them up after translating.
    frame = (
        frame.assign(reason=frame["reason"].map(ctx.reason))
        .groupby("reason", as_index=False, sort=False)
        .sum()
        .sort_values("churned_customers", ascending=False, kind="stable")
    )
    section.charts.append(
        Chart(
            "churn_reasons",
            ctx.t("reasons"),
            charts.bars(
                frame.assign(category=frame["reason"], value=frame["churned_customers"]),
                title=ctx.t("reasons"),
                category_title=ctx.t("reason"),
                value_title=ctx.t("churned_customers"),
                value_format=",.0f",
                label_angle=-30,
            ),
        )
    )
    headers = [ctx.t("reason"), ctx.t("churned_customers")] + ([ctx.t("churned_mrr")] if churned_mrr else [])
    section.tables.append(
        Table(
            ctx.t("reasons"),
            headers,
            [
                [str(r["reason"]), ctx.number(r["churned_customers"])]
                + ([ctx.money(r["churned_mrr"])] if churned_mrr else [])
                for _, r in frame.iterrows()
            ],
            [False] + [True] * (len(headers) - 1),
        )
    )
    return section


INSIDE_SALES_LAYERS = (
    ("activity", ["accounts_approached", "effective_conversations"], ",.0f", False),
    ("intermediate", ["csqls_created", "csqls_to_opportunity"], ",.0f", False),
    ("final", ["won_expansion_mrr"], ",.0f", True),
)


def inside_sales(ctx: ReportContext) -> Section:
    mart = "inside_sales_kpis_monthly"
    section = Section("inside_sales", ctx.t("inside_sales"), [mart])
    if not ctx.require(section, mart):
        return section
    available = ctx.columns(mart)
    wanted = [c for _, cols, _, _ in INSIDE_SALES_LAYERS for c in cols] + [
        "csql_to_opportunity_rate",
        "share_of_expansion_mrr",
        "nrr_contribution",
    ]
    for absent in [c for c in wanted if c not in available]:
        section.missing.append(ctx.t("missing_column", mart=mart, column=absent))
    present = [c for c in wanted if c in available]
    if not present:
        return section
    frame = ctx.df(
        f"""SELECT month, {", ".join(f"{c}::DOUBLE AS {c}" for c in present)} FROM marts.{mart}
            WHERE month <= ? ORDER BY month DESC LIMIT 12""",
        [ctx.reporting_month],
    ).sort_values("month")
    divisor, unit, money_format = ctx.money_unit
    for layer, columns, fmt, money in INSIDE_SALES_LAYERS:
        cols = [c for c in columns if c in present]
        if not cols:
            continue
        title = ctx.t(layer)
        section.charts.append(
            Chart(
                f"inside_sales_{layer}",
                title,
                charts.lines(
                    _long(frame, ctx, cols, divisor if money else 1.0),
                    title=title,
                    value_title=unit if money else ctx.t("count"),
                    value_format=money_format if money else fmt,
                    x_title=ctx.t("month"),
                    series_title=ctx.t("series"),
                ),
            )
        )
    last = frame[frame["month"] == pd.Timestamp(ctx.reporting_month)]
    if not last.empty:
        row = last.iloc[0]

        def fmt_value(column: str) -> str:
            if column.endswith(("_rate", "share_of_expansion_mrr", "nrr_contribution")):
                return ctx.pct(row[column], 2 if column == "nrr_contribution" else 1)
            return ctx.money(row[column]) if column.endswith("_mrr") else ctx.number(row[column])

        section.tables.append(
            Table(
                f"{ctx.t('inside_sales')} {ctx.reporting_month.strftime('%Y-%m')}",
                [ctx.t("series"), ctx.reporting_month.strftime("%Y-%m")],
                [[ctx.t(c), fmt_value(c)] for c in present],
                [False, True],
            )
        )
    return section


def campaign_performance(ctx: ReportContext) -> Section:
    section = Section("campaigns", ctx.t("campaigns"), ["campaign_performance", "ops.campaign_recipients"])
    _engagement(ctx, section)
    _treatment_vs_holdout(ctx, section)
    return section


def _engagement(ctx: ReportContext, section: Section) -> None:
    mart = "campaign_performance"
    if not ctx.require(section, mart, "campaign", "sent"):
        return
    wanted = [
        "run_id",
        "template",
        "locale",
        "sent",
        "delivery_rate",
        "human_open_rate",
        "click_rate",
        "unsubscribe_rate",
    ]
    present = [c for c in wanted if c in ctx.columns(mart)]
    frame = ctx.df(f"SELECT campaign, {', '.join(present)} FROM marts.{mart} ORDER BY run_id DESC NULLS LAST LIMIT 20")
    if frame.empty:
        return

    def cell(column: str, value: Any) -> str:
        if column.endswith("_rate"):
            return ctx.pct(value)
        return ctx.number(value) if column == "sent" else ("" if value is None or pd.isna(value) else str(value))

    section.tables.append(
        Table(
            ctx.t("engagement"),
            [ctx.t("campaign")] + [ctx.t(c) for c in present],
            [[str(r["campaign"])] + [cell(c, r[c]) for c in present] for _, r in frame.iterrows()],
            [False] + [c == "sent" or c.endswith("_rate") for c in present],
        )
    )


def _treatment_vs_holdout(ctx: ReportContext, section: Section) -> None:
    """Per campaign and group: the customers' MRR in the month they were first selected against now.

    A first reading of lift from what exists today (ops.campaign_recipients and customer_mrr_monthly);
    the tracking mart will add CSQLs and expansion within 30/90 days.
    """
    if not ctx.has("campaign_recipients", "ops"):
        section.missing.append(ctx.t("missing_mart", mart="ops.campaign_recipients"))
        return
    if "variant" not in ctx.columns("campaign_recipients", "ops"):
        section.missing.append(ctx.t("missing_column", mart="ops.campaign_recipients", column="variant"))
        return
    if not ctx.require(section, "customer_mrr_monthly", "customer_id", "month", "mrr"):
        return
    frame = ctx.df(
        """
        WITH picked AS (
            SELECT campaign, customer_id, min(variant) AS variant,  -- a customer stays in one group per campaign
                   CAST(date_trunc('month', min(as_of)) AS DATE) AS selected_month
            FROM ops.campaign_recipients WHERE as_of <= ? GROUP BY campaign, customer_id
            HAVING CAST(date_trunc('month', min(as_of)) AS DATE) <= ?  -- measured in the reporting month
        ),
        measured AS (
            SELECT p.campaign, p.variant, p.customer_id,
                   coalesce(t.mrr, 0)::DOUBLE AS mrr_then, coalesce(n.mrr, 0)::DOUBLE AS mrr_now,
                   coalesce(t.mrr, 0) > 0 AND coalesce(n.mrr, 0) = 0 AS churned
            FROM picked p
            LEFT JOIN marts.customer_mrr_monthly t ON t.customer_id = p.customer_id AND t.month = p.selected_month
            LEFT JOIN marts.customer_mrr_monthly n
                   ON n.customer_id = p.customer_id AND n.month = ?
        )
        SELECT campaign, variant, count(*) AS customers, sum(mrr_then) AS mrr_then, sum(mrr_now) AS mrr_now,
               avg(churned::INTEGER) AS churned_rate
        FROM measured GROUP BY campaign, variant ORDER BY campaign, variant DESC
        """,
        [ctx.as_of, ctx.reporting_month, ctx.reporting_month],
    )
    month = ctx.reporting_month.strftime("%Y-%m")
    if frame.empty:
        section.notes.append(ctx.t("no_lift", month=month))
        return
    frame["change"] = (frame["mrr_now"] - frame["mrr_then"]) / frame["mrr_then"].where(frame["mrr_then"] > 0)
    if not (frame["variant"] == "holdout").any():
        section.notes.append(ctx.t("no_holdout"))
    frame["group"] = frame["variant"].map(lambda v: ctx.t(v) if v in ("treatment", "holdout") else str(v))
    measured = frame.dropna(subset=["change"])
    if measured.empty:
        # Bars of nothing would be bare axes: say why there is no lift instead.
        section.notes.append(ctx.t("no_lift", month=month))
    else:
        _lift_chart(ctx, section, measured)
    section.tables.append(
        Table(
            f"{ctx.t('campaigns')} {month}",
            [
                ctx.t("campaign"),
                ctx.t("variant"),
                ctx.t("selected_customers"),
                ctx.t("mrr_then"),
                ctx.t("mrr_now"),
                ctx.t("mrr_change"),
                ctx.t("churned_since"),
            ],
            [
                [
                    str(r["campaign"]),
                    str(r["group"]),
                    ctx.number(r["customers"]),
                    ctx.money(r["mrr_then"]),
                    ctx.money(r["mrr_now"]),
                    ctx.pct(r["change"]),
                    ctx.pct(r["churned_rate"]),
                ]
                for _, r in frame.iterrows()
            ],
            [False, False, True, True, True, True, True],
        )
    )


def _lift_chart(ctx: ReportContext, section: Section, measured: pd.DataFrame) -> None:
    title = f"{ctx.t('lift_chart')} ({ctx.reporting_month:%Y-%m})"
    section.charts.append(
        Chart(
            "campaign_lift",
            title,
            charts.bars(
                measured.assign(category=measured["campaign"], series=measured["group"], value=measured["change"]),
                title=title,
                category_title=ctx.t("campaign"),
                value_title=ctx.t("mrr_change"),
                value_format=".1%",
                series_title=ctx.t("variant"),
                label_angle=-30,  # campaign names are long: slanted, they do not run into each other
            ),
        )
    )


SECTIONS: tuple[Callable[[ReportContext], Section], ...] = (
    mrr_bridge,
    mrr_trend,
    retention,
    churn_rates,
    cohort_retention,
    ranks,
    existing_revenue,
    churn_reasons,
    inside_sales,
    campaign_performance,
)
