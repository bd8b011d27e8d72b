"""Flow hooks shared by kizuna's flows: an alert when a run fails or crashes, naming the run and the failed tasks."""

from __future__ import annotations

import logging
from typing import Any

from kizuna.core import alerts
from kizuna.core.settings import Settings

log = logging.getLogger(__name__)


def failed_task_names(flow_run_id: Any) -> list[str]:
    """Names of the task runs of a flow run that failed or crashed ([] when the API cannot tell)."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    try:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                task_run_filter=TaskRunFilter(
                    state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.FAILED, StateType.CRASHED]))
                ),
            )
    except Exception as exc:  # the alert matters more than its detail
        log.warning("could not read the failed task runs of %s: %s", flow_run_id, exc)
        return []
    return sorted({run.name for run in runs})


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
    try:
        settings = Settings()
        if not alerts.configured(settings):
            return
        subject, body = failure_message(flow.name, flow_run, state, failed_task_names(flow_run.id))
        alerts.notify_quietly(settings, subject, body)
    except Exception as exc:
        log.error("the failure alert for flow run %s could not be sent: %s", getattr(flow_run, "id", "?"), exc)
