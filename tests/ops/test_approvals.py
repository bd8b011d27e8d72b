"""A held campaign pauses the run for approve/reject (Prefect input form), records the decision, sends if approved."""

from __future__ import annotations

import contextvars
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import flow

from kizuna.campaigns import holds
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.reporting.summary import CampaignSummary
from tests.standins.webhook_server import webhook_standin

RUN_ID = "20261124T000000000000Z-test"
HELD = CampaignSummary("renewal_reminder", 12, {}, 0, 0, status="held", note="first send of this campaign")


@flow(name="approval-test")
def approval_flow(warehouse: str, timeout: int, alert_url: str) -> CampaignSummary:
    from flows.support import settle_hold

    settings = Settings(
        warehouse=Path(warehouse),
        approval_timeout_seconds=timeout,
        approval_poll_seconds=1,
        alert_webhook_url=alert_url,  # type: ignore[arg-type]
    )
    return settle_hold(settings, HELD, RUN_ID, lambda: CampaignSummary("renewal_reminder", 12, {}, 12, 0))


def _paused_run(started: float, timeout: float = 30) -> UUID:
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["approval-test"])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                ),
            )
            if runs:
                return runs[0].id
            time.sleep(0.2)
    raise AssertionError("the flow run never paused")


def _start(warehouse: Path, timeout: int, alert_url: str) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}
    ctx = contextvars.copy_context()  # the harness's API settings live in context variables

    def run() -> None:
        out["state"] = ctx.run(approval_flow, str(warehouse), timeout, alert_url, return_state=True)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


@pytest.fixture
def held_warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    with connect(path) as con:
        holds.hold(con, RUN_ID, "renewal_reminder", "first send of this campaign", 12, None)
    return path


def _hold(path: Path) -> holds.Hold:
    with connect(path) as con:
        found = holds.get_hold(con, RUN_ID, "renewal_reminder")
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("decision", "status", "sent"), [("approve", "approved", 12), ("reject", "rejected", 0)], ids=["approve", "reject"]
)
@pytest.mark.usefixtures("prefect_harness")
def test_the_run_pauses_for_a_decision_and_acts_on_it(
    held_warehouse: Path, decision: str, status: str, sent: int
) -> None:
    from prefect.flow_runs import resume_flow_run

    with webhook_standin() as hook:
        thread, out = _start(held_warehouse, timeout=120, alert_url=hook.url)
        flow_run_id = _paused_run(time.monotonic())
        resume_flow_run(flow_run_id, run_input={"decision": decision, "approver": "Tanaka"})
        thread.join(timeout=60)
        [alert] = hook.wait_for(1)
    assert not thread.is_alive()
    summary: CampaignSummary = out["state"].result()
    assert summary.sent == sent and summary.status == ("sent" if sent else "rejected")
    hold = _hold(held_warehouse)
    assert hold.status == status
    assert "renewal_reminder" in alert and "held for approval" in alert and str(flow_run_id) in alert


@pytest.mark.usefixtures("prefect_harness")
def test_without_a_decision_the_hold_stays_waiting_and_the_run_finishes(held_warehouse: Path) -> None:
    with webhook_standin() as hook:
        thread, out = _start(held_warehouse, timeout=2, alert_url=hook.url)
        thread.join(timeout=60)
    assert not thread.is_alive()
    state = out["state"]
    assert state.is_completed()
    summary: CampaignSummary = state.result()
    assert summary.status == "held" and summary.sent == 0 and "no decision" in summary.note
    assert _hold(held_warehouse).status == "waiting"


@pytest.mark.usefixtures("prefect_harness")
def test_the_person_who_started_the_run_cannot_approve_it_in_the_form(tmp_path: Path) -> None:
    """Four eyes in the Prefect form too: the refused approval leaves the hold waiting and says so, not 'rejected'."""
    from prefect.flow_runs import resume_flow_run

    warehouse = tmp_path / "w.duckdb"
    with connect(warehouse) as con:
        holds.hold(con, RUN_ID, "renewal_reminder", "first send of this campaign", 12, None, requested_by="tanaka")
    with webhook_standin() as hook:
        thread, out = _start(warehouse, timeout=120, alert_url=hook.url)
        resume_flow_run(_paused_run(time.monotonic()), run_input={"decision": "approve", "approver": "Tanaka"})
        thread.join(timeout=60)
    assert not thread.is_alive()
    summary: CampaignSummary = out["state"].result()
    assert summary.status == "held" and summary.sent == 0
    assert "four eyes" in summary.note and "stays waiting" in summary.note
    assert _hold(warehouse).status == "waiting"
