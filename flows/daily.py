"""The daily flow: ingest → quality gate → dbt build → campaigns (select, render, deliver) → summary."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from kizuna import dbt_runner
from kizuna.campaigns.run import run_campaign
from kizuna.campaigns.spec import Campaign, load_campaigns
from kizuna.dates import business_today
from kizuna.quality.gate import GateVerdict, gate_and_publish
from kizuna.settings import Settings
from kizuna.sources.ingest import IngestResult, new_load_id, stage_sources
from kizuna.summary import CampaignSummary, RunSummary, last_full_month_kpis
from kizuna.warehouse import connect


@task(name="ingest", cache_policy=NONE)
def ingest(settings: Settings) -> IngestResult:
    return stage_sources(settings)


@task(name="quality-gate", cache_policy=NONE)
def quality_gate(settings: Settings, as_of: date, staged: IngestResult) -> GateVerdict:
    return gate_and_publish(settings, as_of)


@task(name="dbt-build", cache_policy=NONE)
def build_marts(settings: Settings, as_of: date, verdict: GateVerdict) -> dbt_runner.BuildResult:
    return dbt_runner.build(settings, as_of)


@task(name="campaign", task_run_name="campaign-{campaign.name}", cache_policy=NONE)
def campaign_task(
    settings: Settings, campaign: Campaign, run_id: str, as_of: date, built: dbt_runner.BuildResult
) -> CampaignSummary:
    return run_campaign(settings, campaign, run_id, as_of)


@flow(name="daily", log_prints=False)
def daily(
    source_dir: str | None = None,
    warehouse: str | None = None,
    as_of: date | None = None,
) -> RunSummary:
    """Run the whole pipeline once. Unset parameters come from KIZUNA_* settings; as_of defaults to today in Tokyo."""
    overrides: dict[str, object] = {}
    if source_dir:
        overrides["source_dir"] = Path(source_dir)
    if warehouse:
        overrides["warehouse"] = Path(warehouse)
    settings = Settings(**overrides)  # type: ignore[arg-type]
    as_of = as_of or business_today(settings.timezone)
    logger = get_run_logger()

    staged = ingest(settings)
    verdict = quality_gate(settings, as_of, staged)
    built = build_marts(settings, as_of, verdict)
    run_id = new_load_id()
    campaigns = [campaign_task(settings, c, run_id, as_of, built) for c in load_campaigns(settings.campaigns_dir)]

    with connect(settings.warehouse) as con:
        kpis = last_full_month_kpis(con, as_of)
    summary = RunSummary(
        as_of=as_of,
        warehouse=str(settings.warehouse),
        rows_loaded=staged.rows,
        skipped_sources=staged.skipped,
        checks_passed=sum(1 for r in verdict.results if r.success),
        checks_failed_warning=len(verdict.warnings),
        gate_report=verdict.report,
        quarantined=verdict.quarantined,
        new_columns={s.file: s.ignored_columns for s in staged.staged if s.ignored_columns},
        models_built=built.count("model"),
        tests_passed=built.count("test") + built.count("unit_test"),
        kpis=kpis,
        campaigns=campaigns,
        outbox=str(settings.outbox_dir),
    )
    create_markdown_artifact(summary.to_markdown(), key="daily-summary", description="kizuna daily run summary")
    logger.info("daily run finished: %s", summary.rows_loaded)
    return summary
