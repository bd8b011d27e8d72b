"""The run summary: what a daily run loaded, checked, built and sent, as text for the CLI and Prefect."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb

from kizuna.warehouse import table_exists

KPI_COLUMNS = (
    "starting_mrr",
    "new_mrr",
    "expansion_mrr",
    "reactivation_mrr",
    "contraction_mrr",
    "churned_mrr",
    "ending_mrr",
    "ending_customers",
    "customer_churn_rate",
    "nrr",
    "grr",
)


@dataclass
class CampaignSummary:
    campaign: str
    selected: int
    excluded: dict[str, int]
    sent: int
    failed: int
    left_pending: int = 0
    unknown: int = 0  # may or may not have been queued by the provider; see docs/delivery.md


@dataclass
class RunSummary:
    as_of: date
    warehouse: str
    rows_loaded: dict[str, int] = field(default_factory=dict)
    skipped_sources: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed_warning: int = 0
    gate_report: str | None = None
    quarantined: dict[str, int] = field(default_factory=dict)
    new_columns: dict[str, list[str]] = field(default_factory=dict)
    models_built: int = 0
    tests_passed: int = 0
    kpis: dict[str, Any] = field(default_factory=dict)
    campaigns: list[CampaignSummary] = field(default_factory=list)
    outbox: str | None = None

    def to_markdown(self) -> str:
        lines = [f"# kizuna daily run, as of {self.as_of.isoformat()}", ""]
        lines.append("## Loaded")
        lines += [f"- {table}: {rows:,} rows" for table, rows in self.rows_loaded.items() if rows]
        if self.skipped_sources:
            lines.append(f"- skipped (no file): {', '.join(self.skipped_sources)}")
        lines += ["", "## Quality gate"]
        lines.append(
            f"- {self.checks_passed} checks passed, {self.checks_failed_warning} warnings"
            + (f" (report: {self.gate_report})" if self.gate_report else "")
        )
        for table, rows in self.quarantined.items():
            lines.append(f"- {table}: {rows:,} rows quarantined (quarantine.rows)")
        for file, columns in self.new_columns.items():
            lines.append(f"- schema drift: {file} has new columns {', '.join(columns)} (ignored)")
        lines += ["", "## dbt build", f"- {self.models_built} models built, {self.tests_passed} tests passed"]
        if self.kpis:
            month = self.kpis.get("month")
            lines += ["", f"## KPIs, {month} (last full month)"]
            for key in KPI_COLUMNS:
                value = self.kpis.get(key)
                lines.append(f"- {key}: {format_value(key, value)}")
        lines += ["", "## Campaigns"]
        if not self.campaigns:
            lines.append("- no enabled campaign")
        for c in self.campaigns:
            excluded = ", ".join(f"{k} {v}" for k, v in sorted(c.excluded.items())) or "none"
            lines.append(
                f"- {c.campaign}: {c.selected} selected, {c.sent} sent, {c.failed} failed"
                + (f", {c.unknown} unknown" if c.unknown else "")
                + (f", {c.left_pending} left pending" if c.left_pending else "")
                + f"; excluded: {excluded}"
            )
        lines += ["", "## Outputs", f"- warehouse: {self.warehouse}"]
        if self.outbox:
            lines.append(f"- outbox: {self.outbox}")
        return "\n".join(lines) + "\n"


def format_value(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if key.endswith("_rate") or key in ("nrr", "grr"):
        return f"{float(value):.1%}"
    if key.endswith("_mrr"):
        return f"¥{float(value):,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def last_full_month_kpis(con: duckdb.DuckDBPyConnection, as_of: date) -> dict[str, Any]:
    """The mrr_kpis_monthly row of the month before the as-of month, or {} when there is none."""
    if not table_exists(con, "marts", "mrr_kpis_monthly"):
        return {}
    month = date(as_of.year - 1, 12, 1) if as_of.month == 1 else date(as_of.year, as_of.month - 1, 1)
    cols = ", ".join(("month", *KPI_COLUMNS))
    cur = con.execute(f"SELECT {cols} FROM marts.mrr_kpis_monthly WHERE month = ?", [month])
    row = cur.fetchone()
    if row is None:
        return {}
    names = [d[0] for d in cur.description]
    return dict(zip(names, row, strict=True))
