"""The events-load flow: move new webhook events from the event store into the warehouse (every 15 minutes)."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from flows.support import flow_settings
from kizuna.core.settings import Settings
from kizuna.tracking.loader import LoadResult, load_events


@task(name="load-events", cache_policy=NONE)
def load_new_events(settings: Settings) -> LoadResult:
    return load_events(settings)


@flow(name="events-load", log_prints=False)
def events_load(events_dir: str | None = None, warehouse: str | None = None) -> LoadResult:
    """Load stored events exactly once. A warehouse held by the daily run defers the load; it does not fail."""
    settings = flow_settings(warehouse=warehouse, events_dir=events_dir)
    result = load_new_events(settings)
    logger = get_run_logger()
    if result.deferred:
        logger.warning("events-load deferred: %s", result.describe())
    else:
        logger.info("events-load: %s", result.describe())
    return result
