"""The crm-sync flow: kizuna's account fields and today's tasks written to the CRM, after the daily run.

Only what changed is sent (the ledger ops.crm_sync, docs/crm.md); a run killed mid-way and run again creates no
duplicate task. With KIZUNA_CRM_TARGET=none (the default) it says so and does nothing.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.support import AsOfParameter, alert_on_failure, flow_settings, run_writer_lock, warehouse_task
from kizuna import pipeline
from kizuna.core.dates import business_today
from kizuna.core.settings import Settings
from kizuna.crm.sync import SyncSummary


@warehouse_task("crm-sync")
def crm_sync_task(settings: Settings, as_of: AsOfParameter, dry_run: bool) -> SyncSummary:
    if dry_run:
        return pipeline.crm_sync(settings, as_of or business_today(settings.timezone), dry_run=True)
    with run_writer_lock(settings):
        return pipeline.crm_sync(settings, as_of or business_today(settings.timezone))


@flow(name="crm-sync", log_prints=False, on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def crm_sync(warehouse: str | None = None, as_of: AsOfParameter = None, dry_run: bool = False) -> SyncSummary | None:
    """Sync account fields and tasks for as_of (default today in KIZUNA_TIMEZONE) to KIZUNA_CRM_TARGET."""
    settings = flow_settings(warehouse=warehouse)
    logger = get_run_logger()
    if settings.crm_target == "none":
        logger.info("no CRM to write to (KIZUNA_CRM_TARGET=none): nothing synced")
        return None
    summary = crm_sync_task(settings, as_of, dry_run)
    for line in summary.lines():
        logger.info("%s", line)
    return summary
