"""What docs/tracking.md promises: an opt-out SendGrid reports keeps the address out of every later campaign."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from bench.events.loadgen import Signer
from kizuna.campaigns.run import run_campaign
from kizuna.campaigns.spec import load_campaign
from kizuna.core.settings import PROJECT_DIR, Settings
from kizuna.tracking.app import create_app
from kizuna.tracking.loader import load_events
from tests.campaigns.conftest import SG_AS_OF, SgWarehouse, sg_make_warehouse, sg_settings  # noqa: F401 (fixtures)
from tests.standins.sendgrid_server import SendGridStandin, sendgrid_standin  # noqa: F401 (a fixture)
from tests.tracking.conftest import body_of, event


def test_a_signed_unsubscribe_excludes_the_contact_from_the_next_campaign(
    sg_make_warehouse: SgWarehouse,  # noqa: F811
    sg_settings: Settings,  # noqa: F811
    sendgrid_standin: SendGridStandin,  # noqa: F811
    signer: Signer,
    tmp_path: Path,
) -> None:
    sg_make_warehouse(4)
    settings = sg_settings.model_copy(
        update={"events_dir": tmp_path / "events", "sendgrid_webhook_public_key": signer.public_key_b64}
    )
    body = body_of([event("u1", "unsubscribe", email=" C000001@Kunde.Example.jp ")])  # as a mail client wrote it
    with TestClient(create_app(settings)) as client:
        assert client.post("/sendgrid/events", content=body, headers=signer.headers(body)).status_code == 200
    assert load_events(settings).suppressions == 1

    summary = run_campaign(settings, load_campaign(PROJECT_DIR / "campaigns" / "renewal_reminder.yml"), "r1", SG_AS_OF)
    assert summary.excluded.get("suppressed") == 1 and summary.sent == 3
    sent_to = {e for a in sendgrid_standin.state.accepted for e in a.to_emails}
    assert "c000001@kunde.example.jp" not in sent_to and len(sent_to) == 3
