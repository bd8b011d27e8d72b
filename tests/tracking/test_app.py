"""The receiver over HTTP: what it stores, and the status of everything it refuses (which stores nothing)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bench.events.loadgen import Signer
from kizuna.core.settings import Settings
from kizuna.tracking.app import create_app
from kizuna.tracking.signature import WebhookKeyError
from kizuna.tracking.store import StoreLockedError, decode_line
from tests.tracking.conftest import body_of, event, read_only, stored_lines

URL = "/sendgrid/events"


@pytest.fixture
def client(tracking_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(tracking_settings)) as c:
        yield c


def test_signed_batch_is_stored_before_200(client: TestClient, signer: Signer, tracking_settings: Settings) -> None:
    events = [event("e1"), event("e2", "open", sg_machine_open=True), event("e3", "click", url="https://x.jp/?a=1")]
    body = b"  " + body_of(events)  # odd whitespace: verified as sent, never re-serialised
    response = client.post(URL, content=body, headers=signer.headers(body))
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 3}
    lines = stored_lines(tracking_settings.events_dir)
    assert [decode_line(line)[1] for line in lines] == events
    assert client.get("/healthz").json() == {"status": "ok"}


def _signed(signer: Signer, body: bytes, **kw: int) -> dict[str, str]:
    return signer.headers(body, **kw)


BIG = 5 * 1024 * 1024


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("forged", 403),
        ("tampered", 403),
        ("unsigned", 403),
        ("no-timestamp", 403),
        ("signature-not-base64", 403),
        ("replayed-11-minutes-old", 403),
        ("future-timestamp", 403),
        ("oversized-content-length", 413),
        ("oversized-streamed", 413),
        ("not-json", 400),
        ("json-object", 400),
        ("array-of-strings", 400),
        ("nan", 400),
        ("bad-content-length", 400),
    ],
    ids=lambda v: str(v),
)
def test_refused_requests_store_nothing(
    client: TestClient, signer: Signer, tracking_settings: Settings, case: str, status: int
) -> None:
    body = body_of([event("e1")])
    headers = _signed(signer, body)
    content: bytes | Iterator[bytes] = body
    if case == "forged":
        headers = Signer().headers(body)
    elif case == "tampered":
        content = body.replace(b"delivered", b"bounce")
    elif case == "unsigned":
        headers = {}
    elif case == "no-timestamp":
        del headers["X-Twilio-Email-Event-Webhook-Timestamp"]
    elif case == "signature-not-base64":
        headers["X-Twilio-Email-Event-Webhook-Signature"] = "***"
    elif case == "replayed-11-minutes-old":
        headers = signer.headers(body, int(time.time()) - 660)
    elif case == "future-timestamp":
        headers = signer.headers(body, int(time.time()) + 120)
    elif case == "oversized-content-length":
        content = b"[" + b" " * BIG + b"]"
        headers = signer.headers(content)
    elif case == "oversized-streamed":
        big = b"[" + b" " * BIG + b"]"
        headers = signer.headers(big)
        content = iter([big[i : i + 65536] for i in range(0, len(big), 65536)])  # chunked: no Content-Length
    elif case in ("not-json", "json-object", "array-of-strings", "nan"):
        content = {
            "not-json": b"[{'event': 'open'}]",
            "json-object": json.dumps(event("e1")).encode(),
            "array-of-strings": b'["open"]',
            "nan": b'[{"event":"open","timestamp":NaN}]',
        }[case]
        headers = signer.headers(content)
    elif case == "bad-content-length":
        headers["Content-Length"] = "12abc"
    response = client.post(URL, content=content, headers=headers)
    assert response.status_code == status, response.text
    assert stored_lines(tracking_settings.events_dir) == []


def test_read_only_store_answers_503_never_2xx(tracking_settings: Settings, signer: Signer) -> None:
    body = body_of([event("e1")])
    with read_only(tracking_settings.events_dir), TestClient(create_app(tracking_settings)) as c:
        response = c.post(URL, content=body, headers=signer.headers(body))
        assert response.status_code == 503
        assert c.get("/healthz").status_code == 503
    assert stored_lines(tracking_settings.events_dir) == []
    with TestClient(create_app(tracking_settings)) as c:  # writable again: SendGrid's retry lands
        assert c.post(URL, content=body, headers=signer.headers(body)).status_code == 200
    assert len(stored_lines(tracking_settings.events_dir)) == 1


def test_folder_turning_read_only_mid_run_answers_503(tracking_settings: Settings, signer: Signer) -> None:
    small = tracking_settings.model_copy(update={"events_segment_max_bytes": 1024})
    first, second = body_of([event("e1", reason="x" * 900)]), body_of([event("e2", reason="y" * 900)])
    with TestClient(create_app(small)) as c:
        assert c.post(URL, content=first, headers=signer.headers(first)).status_code == 200
        with read_only(small.events_dir):  # the next batch needs a new segment (rotation): it cannot be made
            assert c.post(URL, content=second, headers=signer.headers(second)).status_code == 503
        assert len(stored_lines(small.events_dir)) == 1
        assert c.post(URL, content=second, headers=signer.headers(second)).status_code == 200
    assert len(stored_lines(small.events_dir)) == 2


def test_second_receiver_on_the_same_folder_refuses_to_start(tracking_settings: Settings) -> None:
    with TestClient(create_app(tracking_settings)), pytest.raises(StoreLockedError):  # noqa: SIM117
        with TestClient(create_app(tracking_settings)):
            pass


def test_missing_public_key_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(WebhookKeyError, match="KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY is not set"):
        create_app(Settings(events_dir=tmp_path, sendgrid_webhook_public_key=None))
