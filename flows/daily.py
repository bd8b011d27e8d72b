"""The daily flow: ingest → quality gate → dbt build → scores → campaigns (a subflow) → summary artifacts."""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from flows.campaigns import campaigns as send_campaigns
from flows.support import (
    AsOfParameter,
    alert_on_failure,
    flow_settings,
    node_tasks_wanted,
    prefect_dbt_invoker,
    publish_artifacts,
    run_writer_lock,
    warehouse_task,
)
from kizuna import pipeline
from kizuna.core import flow_runs
from kizuna.core.dates import business_today
from kizuna.core.settings import Settings
from kizuna.quality.gate import GateVerdict
from kizuna.reporting.summary import RunSummary
from kizuna.scoring.run import ScoreResult
from kizuna.sources.ingest import IngestResult, new_load_id
from kizuna.transform.dbt_runner import BuildResult


@warehouse_task("ingest")
def ingest(settings: Settings) -> IngestResult:
    return pipeline.ingest(settings)


@warehouse_task("quality-gate")
def quality_gate(settings: Settings, as_of: date, staged: IngestResult) -> GateVerdict:
    return pipeline.gate(settings, as_of)


@warehouse_task("prepare-marts-inputs")
def prepare_marts_inputs(settings: Settings, verdict: GateVerdict) -> None:
    pipeline.prepare_marts_inputs(settings)


def build_marts(settings: Settings, as_of: date) -> BuildResult:
    """dbt build; with node tasks it runs in the flow itself, so each node's task run hangs under the flow run."""
    if node_tasks_wanted(settings):
        return pipeline.build(settings, as_of, invoke=prefect_dbt_invoker(settings))
    return build_marts_in_one_task(settings, as_of)


@task(name="dbt-build", cache_policy=NONE)
def build_marts_in_one_task(settings: Settings, as_of: date) -> BuildResult:
    return pipeline.build(settings, as_of)


@warehouse_task("score")
def score(settings: Settings, as_of: date) -> ScoreResult | None:
    return pipeline.score(settings, as_of, logger=get_run_logger())


@flow(name="daily", log_prints=False, on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def daily(
    source_dir: str | None = None,
    warehouse: str | None = None,
    as_of: AsOfParameter = None,
    full_refresh: bool = False,
    send: bool = True,
) -> RunSummary:
    """Run the whole pipeline once. Unset parameters come from KIZUNA_* settings; as_of defaults to today in Tokyo.

    full_refresh makes the connectors pull every record again instead of the changes since their cursors, and dbt
    rebuild its incremental models from nothing (docs/incremental.md).
    send=False builds the marts and leaves the sends to the `campaigns` deployment, later inside the send window.
    """
    settings = flow_settings(source_dir=source_dir, warehouse=warehouse, full_refresh=full_refresh)
    as_of = as_of or business_today(settings.timezone)
    flow_run_id = flow_runs.current_flow_run_id()

    # One writer: ingest → gate → build under the writer lock; campaigns take it per campaign, so a run paused
    # for an approval does not keep the next run (or the event loader) out of the warehouse.
    with run_writer_lock(settings):
        staged = ingest(settings)
        verdict = quality_gate(settings, as_of, staged)
        prepare_marts_inputs(settings, verdict)
        built = build_marts(settings, as_of)
        score(settings, as_of)
        run_id = new_load_id()
        pipeline.record_flow_run(settings, flow_run_id, "daily", run_id=run_id, load_id=verdict.load_id)

    sent = send_campaigns(warehouse=settings.warehouse_parameter, as_of=as_of, run_id=run_id) if send else []
    summary = pipeline.summarise(settings, as_of, staged, verdict, built, sent, flow_run_id=flow_run_id)
    publish_artifacts(summary)
    get_run_logger().info("daily run finished: %s", summary.rows_loaded)
    return summary
