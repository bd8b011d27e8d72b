"""The campaigns flow: select and send every enabled campaign, pausing for approval where one is held.

It ends the daily run as a subflow, and runs on its own (deployment `campaigns`) on the marts the last daily run
built; it refuses to send unless the latest load passed the quality gate and the latest dbt build passed.
"""

from __future__ import annotations

from datetime import date
from functools import partial

from prefect import flow

from flows.support import AsOfParameter, alert_on_failure, flow_settings, run_writer_lock, settle_hold, warehouse_task
from kizuna import pipeline
from kizuna.campaigns.spec import Campaign
from kizuna.core import flow_runs
from kizuna.core.dates import business_today
from kizuna.core.runlog import step
from kizuna.core.settings import Settings
from kizuna.reporting.summary import CampaignSummary
from kizuna.sources.ingest import new_load_id


@warehouse_task("campaign", task_run_name="campaign-{campaign.name}")
def campaign_task(settings: Settings, campaign: Campaign, run_id: str, as_of: date) -> CampaignSummary:
    # The writer lock per campaign: a run paused for an approval keeps no one else out of the warehouse.
    return pipeline.send_campaign(settings, campaign, run_id, as_of, lock=partial(run_writer_lock, settings))


@flow(name="campaigns", log_prints=False, on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def campaigns(
    warehouse: str | None = None, as_of: AsOfParameter = None, run_id: str | None = None
) -> list[CampaignSummary]:
    """Send every enabled campaign once for as_of (default today in KIZUNA_TIMEZONE), inside the send window.

    run_id names this run's selections and sends (the daily run passes its own); a new one when unset.
    """
    settings = flow_settings(warehouse=warehouse)
    as_of = as_of or business_today(settings.timezone)
    run_id = run_id or new_load_id()

    enabled = pipeline.enabled_campaigns(settings)
    results = []
    next_campaign = step("campaigns", len(enabled))
    for campaign in enabled:
        next_campaign(campaign.name)
        result = campaign_task(settings, campaign, run_id, as_of)
        if result.status == "held":
            result = settle_hold(settings, result, run_id, partial(campaign_task, settings, campaign, run_id, as_of))
        results.append(result)

    flow_run_id = flow_runs.current_flow_run_id()  # this run's own: the ledger rows lead to its logs
    with run_writer_lock(settings):
        pipeline.record_flow_run(settings, flow_run_id, "campaigns", run_id=run_id)
        pipeline.stamp_sends(settings, run_id, flow_run_id)
    return results
