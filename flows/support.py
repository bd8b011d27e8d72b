"""Prefect-only helpers the flows share: task settings, as_of, dbt node tasks, holds, artifacts, failure alerts."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run as current_run
from prefect.tasks import Task
from pydantic import BeforeValidator, Field, WithJsonSchema

from kizuna.campaigns import holds
from kizuna.core import alerts, flow_runs
from kizuna.core.dates import parse_as_of
from kizuna.core.locks import WarehouseBusyError, writer_lock
from kizuna.core.settings import Settings, is_server_url, settings_with
from kizuna.core.warehouse import WarehouseLockedError, connect
from kizuna.reporting.summary import CampaignSummary, RunSummary
from kizuna.transform import dbt_runner

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger(__name__)


# --- settings from a flow's parameters ---------------------------------------------------------------------


class ServerUrlParameterError(ValueError):
    """A flow was given a server warehouse's URL as its warehouse parameter."""


def flow_settings(*, warehouse: str | None = None, **more: Any) -> Settings:
    """settings_with for a flow's parameters. A server URL is refused as a parameter (its password would sit in
    Prefect's database and UI with the run): the worker's environment gives it as KIZUNA_WAREHOUSE_URL instead."""
    if warehouse and is_server_url(str(warehouse)):
        raise ServerUrlParameterError(
            "the warehouse parameter names a PostgreSQL server: Prefect keeps a run's parameters and shows them, "
            "password included; set KIZUNA_WAREHOUSE_URL in the worker's environment and leave the parameter empty"
        )
    return settings_with(warehouse=warehouse, **more)


# --- the as_of parameter -------------------------------------------------------------------------------------


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


# --- tasks that open the warehouse, and the writer lock --------------------------------------------------------


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


@contextmanager
def run_writer_lock(settings: Settings) -> Iterator[None]:
    """The warehouse's writer lock, naming this flow run to whoever waits for it."""
    flow_run_id = flow_runs.current_flow_run_id()
    with writer_lock(settings.warehouse_target, wait_seconds=settings.warehouse_wait_seconds, flow_run_id=flow_run_id):
        yield


# --- dbt: one task run per node -----------------------------------------------------------------------------


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


# --- approvals: a held campaign pauses the run for a decision ---------------------------------------------------


class Approval(RunInput):
    """The form a paused run shows in the Prefect UI (Resume) for a held campaign."""

    decision: Literal["approve", "reject"] = Field(description="approve: send this run's selection; reject: never.")
    approver: str = Field(min_length=1, description="Your name: recorded with the decision in ops.campaign_holds.")


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
    with run_writer_lock(settings), connect(settings.warehouse_target) as con:
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


# --- artifacts: the run summary on the flow run's page ------------------------------------------------------


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


# --- failure hooks: an alert naming the run and its failed tasks --------------------------------------------


def failed_task_names(flow_run_id: Any) -> list[str]:
    """Names of the task runs of a flow run and its subflows that failed or crashed ([] when the API cannot tell)."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    try:
        with get_client(sync_client=True) as client:
            subflows = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
            )
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id, *(s.id for s in subflows)])),
                task_run_filter=TaskRunFilter(
                    state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.FAILED, StateType.CRASHED]))
                ),
            )
    except Exception as exc:  # the alert matters more than its detail
        log.warning("could not read the failed task runs of %s: %s", flow_run_id, exc)
        return []
    stand_ins = {s.parent_task_run_id for s in subflows}  # the task run a parent shows for each subflow
    return sorted({run.name for run in runs if run.id not in stand_ins})


def failure_message(flow_name: str, flow_run: Any, state: Any, failed_tasks: list[str]) -> tuple[str, str]:
    """Subject and body of the alert for a failed or crashed flow run."""
    subject = f"kizuna: {flow_name} run {flow_run.name} {state.name.lower()}"
    lines = [
        f"Flow run {flow_run.name} ({flow_run.id}) of flow {flow_name} ended {state.name}.",
        f"Failed task(s): {', '.join(failed_tasks)}" if failed_tasks else "No task failed: the flow itself stopped.",
        f"Error: {state.message or 'none recorded'}",
        "Nothing half-written stays behind: the next scheduled run starts over (docs/operations.md).",
    ]
    return subject, "\n".join(lines)


def alert_on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """on_failure / on_crashed hook: post the alert configured in settings; never raises."""
    if getattr(flow_run, "parent_task_run_id", None):
        return  # a subflow: its failure fails the parent run, whose alert names this run's failed tasks too
    try:
        settings = Settings()
        if not alerts.configured(settings):
            return
        subject, body = failure_message(flow.name, flow_run, state, failed_task_names(flow_run.id))
        alerts.notify_quietly(settings, subject, body)
    except Exception as exc:
        log.error("the failure alert for flow run %s could not be sent: %s", getattr(flow_run, "id", "?"), exc)
