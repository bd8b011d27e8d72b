"""Alerts reach a chat webhook (a stand-in on 127.0.0.1): a failed run names itself and its task, never a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from kizuna.core import alerts
from kizuna.core.settings import Settings
from tests.standins.webhook_server import webhook_standin

SENDGRID_KEY = "SG.this-key-must-never-appear-in-an-alert"


@pytest.mark.usefixtures("prefect_harness")
def test_a_failed_daily_run_posts_an_alert_naming_the_run_and_the_failed_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import get_client

    from flows.daily import daily

    src = tmp_path / "src"
    src.mkdir()
    (src / "customers.csv").write_text("customer_id,name\nc1\n", encoding="utf-8")  # not the source contract
    with webhook_standin() as hook:
        monkeypatch.setenv("KIZUNA_ALERT_WEBHOOK_URL", hook.url)
        monkeypatch.setenv("KIZUNA_SENDGRID_API_KEY", SENDGRID_KEY)
        monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "var"))
        state = daily(source_dir=str(src), warehouse=str(tmp_path / "w.duckdb"), return_state=True)
        [text] = hook.wait_for(1)
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name in text and str(run.id) in text
    assert "Failed task(s): ingest" in text and "customers.csv" in text
    assert SENDGRID_KEY not in text and "not-a-real-token" not in text


def test_secrets_are_removed_from_an_alert(tmp_path: Path) -> None:
    with webhook_standin() as hook:
        settings = Settings(alert_webhook_url=hook.url, sendgrid_api_key=SENDGRID_KEY)  # type: ignore[arg-type]
        assert alerts.notify(settings, "subject", f"the key was {SENDGRID_KEY}, posted to {hook.url}")
        [text] = hook.wait_for(1)
    assert "[redacted]" in text and SENDGRID_KEY not in text and hook.url not in text


@pytest.mark.usefixtures("prefect_harness")
def test_a_prefect_notification_block_named_in_settings_is_used() -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    with webhook_standin("/hooks/kizuna") as hook:
        CustomWebhookNotificationBlock(
            name="kizuna-test", url=hook.url, json_data={"text": "{{subject}}: {{body}}"}
        ).save("kizuna-alerts", overwrite=True)
        settings = Settings(alert_block="custom-webhook/kizuna-alerts")
        assert alerts.notify(settings, "kizuna: test", "a block carried this")
        [text] = hook.wait_for(1)
    assert "kizuna: test: a block carried this" in text and hook.paths == ["/hooks/kizuna"]


@pytest.mark.usefixtures("prefect_harness")
def test_a_missing_block_names_the_setting() -> None:
    with pytest.raises(alerts.AlertError, match="KIZUNA_ALERT_BLOCK"):
        alerts.notify(Settings(alert_block="custom-webhook/nope"), "s", "b")
