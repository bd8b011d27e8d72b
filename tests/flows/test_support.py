"""The flows' failure alert: one per failed run, naming the failed tasks of its subflows (as daily's campaigns)."""

from __future__ import annotations

import pytest
from prefect import flow, task

from flows.support import alert_on_failure
from tests.standins.webhook_server import webhook_standin


@task(name="campaign-boom")
def _failing_task() -> None:
    raise RuntimeError("the template does not render")


@flow(name="child-test", on_failure=[alert_on_failure])
def _child() -> None:
    _failing_task()


@flow(name="parent-test", on_failure=[alert_on_failure])
def _parent() -> None:
    _child()


@pytest.mark.usefixtures("prefect_harness")
def test_a_failed_subflow_alerts_once_through_its_parent_naming_its_task(monkeypatch: pytest.MonkeyPatch) -> None:
    with webhook_standin() as hook:
        monkeypatch.setenv("KIZUNA_ALERT_WEBHOOK_URL", hook.url)
        state = _parent(return_state=True)
        [text] = hook.wait_for(1)
        assert len(hook.wait_for(2, timeout=2)) == 1, "the subflow sends no alert of its own"
    assert state.is_failed()
    assert "parent-test" in text and "Failed task(s): campaign-boom" in text
