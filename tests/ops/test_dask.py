"""The path past one machine: batches of sends spread over a local Dask cluster through prefect-dask's task runner.

Workers only talk HTTP to the provider (here the SendGrid stand-in) and hand their outcomes back; the flow alone
writes the ledger, so DuckDB keeps one writer. In-process Dask workers here; a real cluster changes the address.
"""

from __future__ import annotations

import pytest
from prefect import flow, task
from prefect.cache_policies import NONE

from kizuna.core.settings import Settings
from kizuna.email.backends import make_backend
from kizuna.email.message import OutgoingMessage
from tests.standins.sendgrid_server import SendGridStandin

prefect_dask = pytest.importorskip("prefect_dask")


def _message(i: int) -> OutgoingMessage:
    return OutgoingMessage(
        message_key=f"dask-test-{i:04d}",
        to_email=f"customer{i}@example.co.jp",
        to_name=f"顧客 {i}",
        from_email="success@example.co.jp",
        from_name="Kizuna Demo",
        subject="ご契約更新のご案内",
        html="<p>こんにちは</p>",
        text="こんにちは",
    )


@task(name="send-batch", cache_policy=NONE)
def send_batch(settings: Settings, messages: list[OutgoingMessage]) -> list[tuple[str, str]]:
    backend = make_backend(settings)
    try:
        return [(m.message_key, backend.send(m)) for m in messages]
    finally:
        backend.close()


@pytest.mark.usefixtures("prefect_harness")
def test_a_batch_of_sends_runs_on_a_local_dask_cluster() -> None:
    from prefect_dask import DaskTaskRunner

    with SendGridStandin() as standin:
        settings = Settings(
            email_backend="sendgrid",
            sendgrid_api_key="SG.test",  # type: ignore[arg-type]
            sendgrid_api_host=standin.host,
            unsubscribe_secret="test-unsubscribe-secret-not-the-demo-default",  # type: ignore[arg-type]
        )
        messages = [_message(i) for i in range(40)]
        batches = [messages[i : i + 10] for i in range(0, len(messages), 10)]

        @flow(task_runner=DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 2, "processes": False}))
        def spread_sends() -> list[tuple[str, str]]:
            futures = [send_batch.submit(settings, batch) for batch in batches]
            return [outcome for future in futures for outcome in future.result()]

        outcomes = spread_sends()
        accepted = list(standin.state.accepted)
    assert sorted(key for key, _ in outcomes) == [m.message_key for m in messages]
    assert len({provider_id for _, provider_id in outcomes}) == 40
    assert sorted(e for a in accepted for e in a.to_emails) == sorted(m.to_email for m in messages)
