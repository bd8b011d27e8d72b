"""SendGrid faults beyond single answers: a 429 storm is bounded in time and leaves the rest pending, never lost."""

from __future__ import annotations

import collections
import threading
import time

from kizuna.campaigns.run import run_campaign
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.email.message import OutgoingMessage
from kizuna.email.sendgrid import SendGridBackend
from tests.campaigns.conftest import SG_AS_OF, SgWarehouse
from tests.campaigns.test_delivery import campaign
from tests.standins.sendgrid_server import SendGridStandin


class Timed:
    """The real SendGrid backend, timing the sending itself (selection, the send gate and rendering excluded)."""

    def __init__(self, backend: SendGridBackend) -> None:
        self.backend, self.name, self.idempotent_per_key = backend, backend.name, backend.idempotent_per_key
        self.first: float | None = None
        self.last = 0.0
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> str:
        with self._lock:
            self.first = self.first or time.monotonic()
        try:
            return self.backend.send(message)
        finally:
            with self._lock:
                self.last = max(self.last, time.monotonic())

    def close(self) -> None:
        self.backend.close()

    @property
    def seconds(self) -> float:
        return self.last - (self.first or self.last)


def _states(settings: Settings) -> collections.Counter[str]:
    with connect(settings.warehouse) as con:
        return collections.Counter(r[0] for r in con.execute("SELECT state FROM ops.send_ledger").fetchall())


def test_a_429_storm_stops_within_the_allowed_wait_and_a_rerun_sends_each_message_once(
    sg_make_warehouse: SgWarehouse, sg_settings: Settings, sendgrid_standin: SendGridStandin
) -> None:
    recipients = 80
    sg_make_warehouse(recipients)
    sendgrid_standin.state.default = "429"  # every answer, for as long as the storm lasts
    sendgrid_standin.state.rate_limit_reset_in = 0  # each 429 says: try again next second
    settings = sg_settings.model_copy(update={"sendgrid_max_rate_limit_wait_seconds": 3.0, "send_concurrency": 8})

    backend = Timed(SendGridBackend.from_settings(settings))
    stormed = run_campaign(settings, campaign(), "run-storm", SG_AS_OF, backend=backend)
    backend.close()
    # Before the fix: ≈ 80 / 8 x 5 waits of ≈ 1 s = 50 s; the storm is now waited out 3 s in all.
    assert backend.seconds < 3.0 + 2.0, f"a 429 storm kept the campaign sending for {backend.seconds:.1f} s"
    assert (stormed.sent, stormed.unknown, stormed.failed, stormed.left_pending) == (0, 0, 0, recipients)
    assert _states(settings) == {"pending": recipients}  # nothing lost, nothing uncertain: all to be sent later
    assert sendgrid_standin.state.requests <= 8 * 6, "the storm was hammered instead of waited out"

    sendgrid_standin.state.default = "202"  # the storm is over
    after = run_campaign(settings, campaign(), "run-after", SG_AS_OF)
    assert after.sent == recipients and _states(settings) == {"accepted": recipients}
    per_address = collections.Counter(e for a in sendgrid_standin.state.accepted for e in a.to_emails)
    assert len(per_address) == recipients and max(per_address.values()) == 1
