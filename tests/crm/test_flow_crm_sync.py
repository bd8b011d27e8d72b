"""The crm-sync flow's task runs the pipeline step under the writer lock, and is idle without a CRM."""

from __future__ import annotations

from flows.crm_sync import crm_sync_task
from kizuna.core.settings import Settings
from tests.crm.conftest import AS_OF
from tests.standins.hubspot_api import HubSpotStandin


def test_the_task_syncs_then_a_dry_run_finds_nothing_to_do(crm_settings: Settings, hubspot: HubSpotStandin) -> None:
    summary = crm_sync_task.fn(crm_settings, AS_OF, False)
    assert summary.tasks_created == 135 and summary.accounts_updated == 240
    again = crm_sync_task.fn(crm_settings, AS_OF, True)
    assert (again.accounts_updated, again.tasks_created, again.requests) == (1, 1, 0)  # C0250, not in HubSpot
