"""The run summary: what a daily run loaded, checked, built and sent, as text for the CLI and Prefect."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.warehouse import column_exists, table_exists

# The MRR bridge in its order (starting + new + expansion + reactivation − contraction − churned + FX = ending, as
# dbt_project/models/docs.md defines it), then the rates. Without fx_impact_mrr the printed bridge would not add up.
KPI_COLUMNS = (
    "starting_mrr",
    "new_mrr",
    "expansion_mrr",
    "reactivation_mrr",
    "contraction_mrr",
    "churned_mrr",
    "fx_impact_mrr",
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
    holdout: int = 0  # selected but kept out on purpose, to measure lift
    status: str = "sent"  # sent | held | rejected | killed | outside_window | dry_run | call_list
    note: str = ""


# How the summary names a campaign that did not send normally (CampaignSummary.status).
STATUS_TEXT = {
    "held": "held for approval",
    "rejected": "rejected by its approver",
    "killed": "not sent: the kill switch is on (KIZUNA_SENDING_DISABLED)",
    "outside_window": "not sent: outside the send window",
    "dry_run": "dry run, nothing sent",
}


@dataclass
class RunSummary:
    as_of: date
    warehouse: str
    rows_loaded: dict[str, int] = field(default_factory=dict)
    skipped_sources: list[str] = field(default_factory=list)
    unchanged_sources: list[str] = field(default_factory=list)  # same file as the last load: raw reused
    checks_passed: int = 0
    checks_failed_warning: int = 0
    gate_report: str | None = None
    quarantined: dict[str, int] = field(default_factory=dict)
    normalised: list[str] = field(default_factory=list)  # what the gate rewrote, e.g. owner display names
    new_columns: dict[str, list[str]] = field(default_factory=dict)
    models_built: int = 0
    tests_passed: int = 0
    rebuilt_months: str | None = None  # e.g. "rebuilt from 2025-03", "all months: <reason>" (docs/incremental.md)
    kpis: dict[str, Any] = field(default_factory=dict)
    campaigns: list[CampaignSummary] = field(default_factory=list)
    outbox: str | None = None
    kpi_months: list[dict[str, Any]] = field(default_factory=list)  # mrr_kpis_monthly, latest months last
    sends_by_state: dict[str, dict[str, int]] = field(default_factory=dict)  # campaign -> ledger state -> rows
    flow_run_id: str | None = None
    log: str | None = None  # the command's run log (var/logs/), when a `kizuna` command ran the flow

    def campaign_rows(self) -> list[dict[str, Any]]:
        """One row per campaign: what was selected, excluded (by reason) and sent; a table for the Prefect UI."""
        return [
            {
                "campaign": c.campaign,
                "status": c.status,
                "selected": c.selected,
                "sent": c.sent,
                "failed": c.failed,
                "unknown": c.unknown,
                "left_pending": c.left_pending,
                "excluded": sum(c.excluded.values()),
                **{f"excluded_{k}": v for k, v in sorted(c.excluded.items())},
                "note": c.note,
            }
            for c in self.campaigns
        ]

    def to_markdown(self) -> str:
        lines = [f"# kizuna daily run, as of {self.as_of.isoformat()}", ""]
        lines.append("## Loaded")
        # One line: the per-table counts are also the rows-loaded artifact, and the summary must fit a screen.
        loaded = ", ".join(f"{table} {rows:,}" for table, rows in self.rows_loaded.items() if rows)
        lines.append(f"- rows: {loaded or 'none'}")
        if self.skipped_sources:
            lines.append(f"- skipped (no file): {', '.join(self.skipped_sources)}")
        if self.unchanged_sources:
            lines.append(f"- unchanged since the last load (not parsed): {', '.join(self.unchanged_sources)}")
        lines += ["", "## Quality gate"]
        lines.append(
            f"- {self.checks_passed} checks passed, {self.checks_failed_warning} warnings"
            + (f" (report: {self.gate_report})" if self.gate_report else "")
        )
        for table, rows in self.quarantined.items():
            lines.append(f"- {table}: {rows:,} rows quarantined (quarantine.rows)")
        lines += [f"- normalised: {change}" for change in self.normalised]
        for file, columns in self.new_columns.items():
            lines.append(f"- schema drift: {file} has new columns {', '.join(columns)} (ignored)")
        lines += ["", "## dbt build", f"- {self.models_built} models built, {self.tests_passed} tests passed"]
        if self.rebuilt_months:
            lines.append(f"- incremental models: {self.rebuilt_months}")
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
            if c.status in STATUS_TEXT:
                lines.append(f"- {c.campaign}: {STATUS_TEXT[c.status]}" + (f" ({c.note})" if c.note else ""))
                if not c.selected:
                    continue
            excluded = ", ".join(f"{k} {v}" for k, v in sorted(c.excluded.items())) or "none"
            lines.append(
                f"- {c.campaign}: {c.selected} selected, {c.sent} sent, {c.failed} failed"
                + (f", {c.unknown} unknown" if c.unknown else "")
                + (f", {c.left_pending} left pending" if c.left_pending else "")
                + f"; excluded: {excluded}"
            )
        if self.sends_by_state:
            lines += ["", "## Sends by state (ledger, all runs)"]
            for campaign, states in sorted(self.sends_by_state.items()):
                lines.append(f"- {campaign}: " + ", ".join(f"{s} {n:,}" for s, n in sorted(states.items())))
        lines += ["", "## Outputs", f"- warehouse: {self.warehouse}"]
        if self.flow_run_id:
            lines.append(f"- Prefect flow run: {self.flow_run_id}")
        if self.outbox:
            lines.append(f"- outbox: {self.outbox}")
        if self.log:
            lines.append(f"- log (Prefect, dbt and Great Expectations output): {self.log}")
        return "\n".join(lines) + "\n"


def format_value(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if key.endswith("_rate") or key in ("nrr", "grr"):
        return f"{float(value):.1%}"
    if key.endswith("_mrr"):
        return f"-¥{-float(value):,.0f}" if float(value) < 0 else f"¥{float(value):,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _kpi_select(con: Connection) -> str:
    """The KPI columns to select; NULL for one the marts do not have yet (built by an older version of the models)."""
    cols = ["month"]
    for key in KPI_COLUMNS:
        cols.append(key if column_exists(con, "marts", "mrr_kpis_monthly", key) else f"NULL AS {key}")
    return ", ".join(cols)


def last_full_month_kpis(con: Connection, as_of: date) -> dict[str, Any]:
    """The mrr_kpis_monthly row of the month before the as-of month, or {} when there is none."""
    if not table_exists(con, "marts", "mrr_kpis_monthly"):
        return {}
    month = date(as_of.year - 1, 12, 1) if as_of.month == 1 else date(as_of.year, as_of.month - 1, 1)
    cols = _kpi_select(con)
    cur = con.execute(f"SELECT {cols} FROM marts.mrr_kpis_monthly WHERE month = ?", [month])
    row = cur.fetchone()
    if row is None:
        return {}
    names = [d[0] for d in cur.description]
    return dict(zip(names, row, strict=True))


def kpi_months(con: Connection, as_of: date, months: int = 12) -> list[dict[str, Any]]:
    """The last `months` full months of mrr_kpis_monthly before the as-of month, oldest first."""
    if not table_exists(con, "marts", "mrr_kpis_monthly"):
        return []
    first_of_month = as_of.replace(day=1)
    cols = _kpi_select(con)
    cur = con.execute(
        f"SELECT * FROM (SELECT {cols} FROM marts.mrr_kpis_monthly WHERE month < ? ORDER BY month DESC LIMIT ?) "
        "AS latest ORDER BY month",
        [first_of_month, months],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def sends_by_state(con: Connection) -> dict[str, dict[str, int]]:
    """Ledger rows per campaign and state, over all runs (pending, sending, accepted, failed_permanent, unknown)."""
    if not table_exists(con, ops.SEND_LEDGER.schema, ops.SEND_LEDGER.table):
        return {}
    out: dict[str, dict[str, int]] = {}
    for campaign, state, rows in con.execute(
        f"SELECT campaign, state, count(*) FROM {ops.SEND_LEDGER} GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall():
        out.setdefault(str(campaign), {})[str(state)] = int(rows)
    return out
