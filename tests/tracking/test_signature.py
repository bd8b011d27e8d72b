"""Signature and freshness checks: SendGrid's published test vector and keys made here."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.events.loadgen import Signer
from kizuna.tracking.signature import SignatureRejected, WebhookKeyError, WebhookVerifier, load_public_key

# The sendgrid library's own test vector (sendgrid-python test/unit/test_eventwebhook.py).
VECTOR_KEY = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
VECTOR_SIGNATURE = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
VECTOR_TIMESTAMP = "1600112502"
VECTOR_PAYLOAD = (
    json.dumps(
        [
            {
                "email": "hello@world.com",
                "event": "dropped",
                "reason": "Bounced Address",
                "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
                "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                "timestamp": 1600112492,
            }
        ],
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    + b"\r\n"
)
NOW = 1_750_000_000


def test_sendgrid_vector_verifies_with_the_replay_window_off() -> None:
    WebhookVerifier.from_base64(VECTOR_KEY, max_age_seconds=None).verify(
        VECTOR_PAYLOAD, VECTOR_SIGNATURE, VECTOR_TIMESTAMP
    )


def test_sendgrid_vector_agrees_with_the_sendgrid_helper() -> None:
    from sendgrid import EventWebhook

    assert EventWebhook(VECTOR_KEY).verify_signature(VECTOR_PAYLOAD.decode(), VECTOR_SIGNATURE, VECTOR_TIMESTAMP)


@pytest.mark.parametrize(
    ("payload", "timestamp", "max_age"),
    [
        (VECTOR_PAYLOAD.rstrip(b"\r\n"), VECTOR_TIMESTAMP, None),
        (VECTOR_PAYLOAD.replace(b"hello", b"hellO"), VECTOR_TIMESTAMP, None),
        (VECTOR_PAYLOAD, "1600112503", None),
        (VECTOR_PAYLOAD, VECTOR_TIMESTAMP, 600),
    ],
    ids=["trailing-crlf-dropped", "body-changed", "timestamp-changed", "replay-window-on"],
)
def test_sendgrid_vector_refused_when_anything_differs(payload: bytes, timestamp: str, max_age: int | None) -> None:
    with pytest.raises(SignatureRejected):
        WebhookVerifier.from_base64(VECTOR_KEY, max_age_seconds=max_age).verify(payload, VECTOR_SIGNATURE, timestamp)


def _verifier(signer: Signer) -> WebhookVerifier:
    return WebhookVerifier.from_base64(signer.public_key_b64, max_age_seconds=600, clock_skew_seconds=30)


def test_generated_key_signature_verifies(signer: Signer) -> None:
    body = b'[{"event":"open"}]'
    h = signer.headers(body, NOW - 5)
    _verifier(signer).verify(body, h["X-Twilio-Email-Event-Webhook-Signature"], str(NOW - 5), now=NOW)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("other-key", "does not match"),
        ("body-tampered", "does not match"),
        ("stale-601s", "replay"),
        ("future-31s", "future"),
        ("signature-not-base64", "not base64"),
        ("signature-empty", "missing"),
        ("timestamp-missing", "missing"),
        ("timestamp-not-digits", "epoch"),
        ("signature-garbage-der", "does not match"),
    ],
    ids=lambda v: str(v),
)
def test_refusals(signer: Signer, case: str, expected: str) -> None:
    body = b'[{"event":"open"}]'
    ts: str | None = str(NOW)
    sig: str | None = signer.headers(body, NOW)["X-Twilio-Email-Event-Webhook-Signature"]
    if case == "other-key":
        sig = Signer().headers(body, NOW)["X-Twilio-Email-Event-Webhook-Signature"]
    elif case == "body-tampered":
        body = b'[{"event":"click"}]'
    elif case == "stale-601s":
        ts = str(NOW - 601)
        sig = signer.headers(body, NOW - 601)["X-Twilio-Email-Event-Webhook-Signature"]
    elif case == "future-31s":
        ts = str(NOW + 31)
        sig = signer.headers(body, NOW + 31)["X-Twilio-Email-Event-Webhook-Signature"]
    elif case == "signature-not-base64":
        sig = "%%%not-base64%%%"
    elif case == "signature-empty":
        sig = ""
    elif case == "timestamp-missing":
        ts = None
    elif case == "timestamp-not-digits":
        ts = "1750000000.5"
    elif case == "signature-garbage-der":
        sig = base64.b64encode(b"not a DER signature").decode()
    with pytest.raises(SignatureRejected, match=expected):
        _verifier(signer).verify(body, sig, ts, now=NOW)


def test_small_clock_skew_is_allowed(signer: Signer) -> None:
    body = b"[]"
    sig = signer.headers(body, NOW + 20)["X-Twilio-Email-Event-Webhook-Signature"]
    _verifier(signer).verify(body, sig, str(NOW + 20), now=NOW)


@pytest.mark.parametrize(
    "key",
    [
        "not base64 at all!",
        base64.b64encode(b"not DER").decode(),
        base64.b64encode(
            ec.generate_private_key(ec.SECP384R1())
            .public_key()
            .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ).decode(),
    ],
    ids=["not-base64", "not-der", "p384-not-p256"],
)
def test_bad_public_key_setting_names_the_setting(key: str) -> None:
    with pytest.raises(WebhookKeyError, match="KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        load_public_key(key)
