"""The daily flow: ingest → quality gate → dbt build → campaigns (send window, approvals) → summary artifacts."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run as current_run
from prefect.tasks import Task
from pydantic import BeforeValidator, Field, WithJsonSchema

from flows.hooks import alert_on_failure
from kizuna.campaigns import holds
from kizuna.campaigns.run import run_campaign
from kizuna.campaigns.spec import Campaign, load_campaigns
from kizuna.core import alerts, flow_runs
from kizuna.core.calendar import outside_send_window
from kizuna.core.contract import TABLES
from kizuna.core.dates import business_today, parse_as_of
from kizuna.core.locks import WarehouseBusyError, wait_until_free, writer_lock
from kizuna.core.runlog import step
from kizuna.core.settings import Settings
from kizuna.core.warehouse import WarehouseLockedError, connect
from kizuna.quality.gate import GateVerdict, gate_and_publish
from kizuna.quality.suites import load_suites
from kizuna.reporting.summary import CampaignSummary, RunSummary, kpi_months, last_full_month_kpis, sends_by_state
from kizuna.scoring.model import NotEnoughHistoryError
from kizuna.scoring.run import ScoreResult, score_warehouse
from kizuna.sources.ingest import IngestResult, new_load_id, stage_sources
from kizuna.tracking.loader import ensure_tracking_tables
from kizuna.transform import dbt_runner

P = ParamSpec("P")
R = TypeVar("R")


def _as_of_parameter(value: object) -> object:
    """A deployment's as_of arrives as text: refuse one that is not a date in our words, before any step runs."""
    if isinstance(value, str) and value:
        return parse_as_of(value, "UTC", name="as_of")  # the zone only matters for an empty value
    return value or None


# The server checks a run's parameters against the JSON schema before it creates the run, but not the schema's
# "format": the pattern makes it refuse "notadate" there; the validator catches "2026-02-30" when the run starts.
AsOfParameter = Annotated[
    date | None,
    BeforeValidator(_as_of_parameter),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "date", "pattern": r"^(\d{4}-\d{2}-\d{2})?$"}, {"type": "null"}],
            "title": "as_of",
            "description": "Business date YYYY-MM-DD; empty for today in KIZUNA_TIMEZONE.",
        }
    ),
]


def _lost_a_race_for_the_file(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a step only when another process took the DuckDB file between our wait and our open (transient).

    A step that waited the full KIZUNA_WAREHOUSE_WAIT_SECONDS (WarehouseBusyError) or failed on data is final.
    """
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, WarehouseLockedError) and not isinstance(exc, WarehouseBusyError)


LOCK_RETRY_DELAYS: list[float] = [2.0, 10.0]


class warehouse_task:  # a decorator, named like prefect's @task
    """A step that opens the warehouse: never cached, retried only when it lost a race for the file."""

    def __init__(self, name: str, task_run_name: str | None = None) -> None:
        self.name = name
        self.task_run_name = task_run_name

    def __call__(self, fn: Callable[P, R]) -> Task[P, R]:
        return task(
            name=self.name,
            task_run_name=self.task_run_name,
            cache_policy=NONE,
            retries=len(LOCK_RETRY_DELAYS),
            retry_delay_seconds=LOCK_RETRY_DELAYS,
            retry_condition_fn=_lost_a_race_for_the_file,
        )(fn)


@warehouse_task("ingest")
def ingest(settings: Settings) -> IngestResult:
    wait_until_free(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds)
    return stage_sources(settings, progress=step("ingest", len(TABLES)))


@warehouse_task("quality-gate")
def quality_gate(settings: Settings, as_of: date, staged: IngestResult) -> GateVerdict:
    wait_until_free(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds)
    suites = len(load_suites(settings.expectations_dir, "raw"))
    return gate_and_publish(settings, as_of, progress=step("quality gate", suites))


@warehouse_task("prepare-marts-inputs")
def prepare_marts_inputs(settings: Settings, verdict: GateVerdict) -> None:
    """The ops tables the engagement models read exist (empty on a fresh warehouse), so dbt always builds."""
    wait_until_free(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds)
    with connect(settings.warehouse) as con:
        ensure_tracking_tables(con, settings.templates_dir)  # and the intent links templates declare now


@warehouse_task("score")
def score(settings: Settings, as_of: date) -> ScoreResult | None:
    """Churn risk, expansion propensity and deal forecasts, before campaigns so they select on fresh scores.

    A young warehouse cannot train a model yet; that is reported and the run goes on without scores.
    """
    wait_until_free(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds)
    step("scores")
    try:
        result = score_warehouse(settings, as_of)
    except NotEnoughHistoryError as exc:
        get_run_logger().warning("no scores this run: %s", exc)
        return None
    if result.trained:
        get_run_logger().info("scores model %s trained in this run: %s", result.model_version, result.training_reason)
    return result


def prefect_dbt_invoker(settings: Settings) -> dbt_runner.Invoker:
    """dbt through prefect-dbt: every model, seed and test becomes its own task run with its dbt log lines."""
    from dbt_common.events.base_types import EventLevel
    from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

    runner = PrefectDbtRunner(
        # log_level explicit: the default derives from PREFECT_LOGGING_LEVEL, whose "warning" dbt does not know
        settings=PrefectDbtSettings(
            project_dir=settings.dbt_project_dir, profiles_dir=settings.dbt_project_dir, log_level=EventLevel.INFO
        ),
        raise_on_failure=True,
    )

    def invoke(args: list[str]) -> str | None:
        try:
            runner.invoke(args)
        except ValueError as exc:
            if str(exc).startswith("Failed to invoke dbt command"):
                return str(exc)  # dbt could not run at all
            # "Failures detected …": a node failed; build() reads which from run_results.json and raises
        return None

    return invoke


def node_tasks_wanted(settings: Settings) -> bool:
    """One Prefect task per dbt node costs ≈ 140 ms each (≈ 30 s for 215 nodes): worth it where someone
    watches a Prefect server's UI, not on the temporary server a plain `kizuna run` starts and discards."""
    if settings.dbt_node_tasks != "auto":
        return settings.dbt_node_tasks == "always"
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def build_marts(settings: Settings, as_of: date) -> dbt_runner.BuildResult:
    """dbt build in the flow itself, so node tasks hang directly under the flow run; fails it on any failure."""
    wait_until_free(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds)
    if node_tasks_wanted(settings):
        step("dbt build")
        return dbt_runner.build(settings, as_of, invoke=prefect_dbt_invoker(settings))
    return build_marts_in_one_task(settings, as_of)


@task(name="dbt-build", cache_policy=NONE)
def build_marts_in_one_task(settings: Settings, as_of: date) -> dbt_runner.BuildResult:
    advance = step("dbt build")
    return dbt_runner.build(settings, as_of, on_node=lambda node: advance(node.name.split(".")[-1]))


@warehouse_task("campaign", task_run_name="campaign-{campaign.name}")
def campaign_task(settings: Settings, campaign: Campaign, run_id: str, as_of: date) -> CampaignSummary:
    reason = outside_send_window(settings)
    if reason:
        return CampaignSummary(campaign.name, 0, {}, 0, 0, status="outside_window", note=reason)
    wait_until_free(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds)
    with writer_lock(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds, flow_run_id=_flow_run_id()):
        return run_campaign(settings, campaign, run_id, as_of)


class Approval(RunInput):
    """The form a paused daily run shows in the Prefect UI (Resume) for a held campaign."""

    decision: Literal["approve", "reject"] = Field(description="approve: send this run's selection; reject: never.")
    approver: str = Field(min_length=1, description="Your name: recorded with the decision in ops.campaign_holds.")


def _flow_run_id() -> str | None:
    return flow_runs.current_flow_run_id()


def _hold_text(held: CampaignSummary, run_id: str) -> str:
    return (
        f"Campaign **{held.campaign}** (run `{run_id}`) is held for approval: {held.selected:,} recipients selected"
        + (f"; {held.note}" if held.note else "")
        + ". Approve to send this run's selection, reject to send nothing. The selection is in "
        "ops.campaign_recipients (run_id above)."
    )


def _back_to_running() -> None:
    """After an unanswered pause the API still shows the run Paused; set it Running so it can finish."""
    from prefect import get_client
    from prefect.states import Running

    flow_run_id = current_run.id
    if flow_run_id:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run_id, Running(), force=True)


def settle_hold(
    settings: Settings, held: CampaignSummary, run_id: str, send: Callable[[], CampaignSummary]
) -> CampaignSummary:
    """Alert, pause for an approve/reject decision in the UI, record it with holds.decide, and send if approved.

    Unanswered after settings.approval_timeout_seconds: the hold stays waiting (decide later with the campaign
    CLI; the next run picks it up) and the run finishes without sending this campaign.
    """
    logger = get_run_logger()
    text = _hold_text(held, run_id)
    alerts.notify_quietly(
        settings,
        f"kizuna: campaign {held.campaign} held for approval",
        f"Flow run {current_run.name} ({current_run.id}) is paused: {text} Resume it in the Prefect UI with a "
        "decision.",
    )
    try:
        answer = pause_flow_run(
            wait_for_input=Approval.with_initial_data(description=text),
            timeout=settings.approval_timeout_seconds,
            poll_interval=settings.approval_poll_seconds,
            key=re.sub(r"[^a-z0-9-]+", "-", f"approval-{held.campaign}-{run_id}".lower()),  # Prefect's key alphabet
        )
    except FlowPauseTimeout:
        _back_to_running()
        logger.warning(
            "campaign %s: no decision in %d s; the hold stays waiting", held.campaign, settings.approval_timeout_seconds
        )
        return replace(held, note=f"no decision within {settings.approval_timeout_seconds} s; the hold stays waiting")
    decision: holds.Decision = "approved" if answer.decision == "approve" else "rejected"
    with (
        writer_lock(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds, flow_run_id=_flow_run_id()),
        connect(settings.warehouse) as con,
    ):
        try:
            decided = holds.decide(
                con, run_id, held.campaign, decision, answer.approver, allow_self=settings.approval_allow_self
            )
        except holds.HoldError as exc:  # decided meanwhile (e.g. on the command line): that decision stands
            found = holds.get_hold(con, run_id, held.campaign)
            if found is None:
                raise
            if found.status == "waiting":  # refused, e.g. four eyes: nothing was decided
                logger.warning("campaign %s: %s", held.campaign, exc)
                return replace(held, note=f"{exc}; the hold stays waiting")
            decided = found
    logger.info("campaign %s %s by %s", held.campaign, decided.status, answer.approver)
    if decided.status == "approved":
        return send()
    return replace(held, status="rejected", note=f"rejected by {answer.approver}")


def _plain(value: Any) -> Any:
    """A value as JSON can carry it (table artifacts are JSON): dates as ISO text, decimals as floats."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def publish_artifacts(summary: RunSummary) -> None:
    """The run summary in the Prefect UI: the markdown (as the CLI prints it), tables and the gate report."""
    create_markdown_artifact(summary.to_markdown(), key="daily-summary", description="kizuna daily run summary")
    create_table_artifact(
        [{"source": table, "rows": rows} for table, rows in summary.rows_loaded.items()],
        key="rows-loaded",
        description="Rows loaded per source table",
    )
    if summary.gate_report:
        create_link_artifact(
            Path(summary.gate_report).resolve().as_uri(),
            link_text="quality gate report",
            key="quality-gate-report",
            description=f"{summary.checks_passed} checks passed, {summary.checks_failed_warning} warnings",
        )
    if summary.kpi_months:
        create_table_artifact(
            [{k: _plain(v) for k, v in row.items()} for row in summary.kpi_months],
            key="mrr-kpis-monthly",
            description="mrr_kpis_monthly, last 12 full months",
        )
    create_table_artifact(summary.campaign_rows(), key="campaigns", description="Recipients and exclusions")
    create_table_artifact(
        [{"campaign": c, **states} for c, states in summary.sends_by_state.items()],
        key="sends-by-state",
        description="Send ledger rows by state",
    )


@flow(name="daily", log_prints=False, on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def daily(
    source_dir: str | None = None,
    warehouse: str | None = None,
    as_of: AsOfParameter = None,
    full_refresh: bool = False,
) -> RunSummary:
    """Run the whole pipeline once. Unset parameters come from KIZUNA_* settings; as_of defaults to today in Tokyo.

    full_refresh makes the connectors pull every record again instead of the changes since their cursors.
    """
    overrides: dict[str, object] = {}
    if full_refresh:
        overrides["full_refresh"] = True
    if source_dir:
        overrides["source_dir"] = Path(source_dir)
    if warehouse:
        overrides["warehouse"] = Path(warehouse)
    settings = Settings(**overrides)  # type: ignore[arg-type]
    as_of = as_of or business_today(settings.timezone)
    logger = get_run_logger()
    flow_run_id = _flow_run_id()

    # One writer: ingest → gate → build under the writer lock; campaigns take it per campaign, so a run paused
    # for an approval does not keep the next run (or the event loader) out of the warehouse.
    with writer_lock(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds, flow_run_id=flow_run_id):
        staged = ingest(settings)
        verdict = quality_gate(settings, as_of, staged)
        prepare_marts_inputs(settings, verdict)
        built = build_marts(settings, as_of)
        score(settings, as_of)
        run_id = new_load_id()
        with connect(settings.warehouse) as con:
            flow_runs.record_run(con, flow_run_id, "daily", run_id=run_id, load_id=verdict.load_id)

    enabled = load_campaigns(settings.campaigns_dir)
    campaigns = []
    next_campaign = step("campaigns", len(enabled))
    for campaign in enabled:
        next_campaign(campaign.name)
        result = campaign_task(settings, campaign, run_id, as_of)
        if result.status == "held":
            send_again = partial(campaign_task, settings, campaign, run_id, as_of)
            result = settle_hold(settings, result, run_id, send_again)
        campaigns.append(result)

    with (
        writer_lock(settings.warehouse, wait_seconds=settings.warehouse_wait_seconds, flow_run_id=flow_run_id),
        connect(settings.warehouse) as con,
    ):
        flow_runs.stamp(con, "ops.send_ledger", "run_id", run_id, flow_run_id)
    with connect(settings.warehouse, read_only=True) as con:
        kpis = last_full_month_kpis(con, as_of)
        months = kpi_months(con, as_of)
        by_state = sends_by_state(con)
    summary = RunSummary(
        as_of=as_of,
        warehouse=str(settings.warehouse),
        rows_loaded=staged.rows,
        skipped_sources=staged.skipped,
        checks_passed=sum(1 for r in verdict.results if r.success),
        checks_failed_warning=len(verdict.warnings),
        gate_report=verdict.report,
        quarantined=verdict.quarantined,
        normalised=[str(change) for change in verdict.normalised],
        new_columns={s.file: s.ignored_columns for s in staged.staged if s.ignored_columns},
        models_built=built.count("model"),
        tests_passed=built.count("test") + built.count("unit_test"),
        kpis=kpis,
        campaigns=campaigns,
        outbox=str(settings.outbox_dir),
        kpi_months=months,
        sends_by_state=by_state,
        flow_run_id=flow_run_id,
    )
    publish_artifacts(summary)
    logger.info("daily run finished: %s", summary.rows_loaded)
    return summary
