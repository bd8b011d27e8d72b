"""flows.support: the failure alert (one per failed run, naming the failed tasks of its subflows, as daily's
campaigns) and dbt through Prefect, one task run per node."""

from __future__ import annotations

import datetime as dt

import pytest
from prefect import flow, task

from flows.support import alert_on_failure, prefect_dbt_invoker
from kizuna.core.settings import Settings
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


@pytest.mark.usefixtures("prefect_harness")
def test_through_prefect_dbt_each_node_is_a_task_run_and_a_failed_test_fails_the_build(settings: Settings) -> None:
    """prefect_dbt_invoker (node tasks, on where a server's UI is watched): one task run per model and test, the
    nodes read back as with plain dbt, and a failing data test raises DbtBuildError naming what failed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from kizuna.core.warehouse import connect
    from kizuna.transform import dbt_runner
    from tests.dbt.helpers import ensure_raw_schema

    with connect(settings.warehouse) as con:  # the same customer twice: stg_crm__customers' unique test fails
        ensure_raw_schema(con)
        con.execute("INSERT INTO raw.customers (customer_id, name) VALUES ('C1', 'a'), ('C1', 'b')")

    @flow(name="dbt-node-tasks-test")
    def build() -> None:
        dbt_runner.build(
            settings,
            dt.date(2026, 11, 23),
            select="+int_months stg_crm__customers stg_crm__contacts",
            invoke=prefect_dbt_invoker(settings),
        )

    state = build(return_state=True)
    with pytest.raises(dbt_runner.DbtBuildError, match="customer_id") as failed:
        state.result()
    nodes = failed.value.result
    assert nodes is not None
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    names = [r.name for r in runs]
    assert sum(n.startswith("model ") for n in names) == nodes.count("model") >= 3, names
    assert sum(n.startswith("test ") for n in names) == len([n for n in nodes.nodes if n.resource_type == "test"])
    assert [n.name.rsplit(".", 1)[0] for n in nodes.failed] == ["test.kizuna.unique_stg_crm__customers_customer_id"]


@pytest.mark.parametrize("flow_name", ["daily", "campaigns", "events_load", "crm_sync", "train_scores"])
def test_a_flow_given_a_server_url_as_its_warehouse_parameter_refuses_it_without_the_password(
    prefect_harness: None, flow_name: str
) -> None:
    # Before: the flow took it (Prefect keeps and shows a run's parameters, password included) as a DuckDB path.
    # The daily flow runs as Prefect runs it; the others' bodies are called directly (the same first statement,
    # without a flow run's few seconds each).
    import importlib

    from flows.support import ServerUrlParameterError

    flow_object = getattr(importlib.import_module(f"flows.{flow_name}"), flow_name)
    call = flow_object if flow_name == "daily" else flow_object.fn
    with pytest.raises(ServerUrlParameterError) as refused:
        call(warehouse="postgresql://kizuna:pw-in-a-parameter@db.internal/kizuna")
    assert "KIZUNA_WAREHOUSE_URL" in str(refused.value) and "pw-in-a-parameter" not in str(refused.value)
