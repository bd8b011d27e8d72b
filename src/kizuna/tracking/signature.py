"""Verifying SendGrid's signed Event Webhook: ECDSA P-256 / SHA-256 over timestamp text + raw body, kept fresh."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
_MAX_TIMESTAMP_DIGITS = 12  # epoch seconds until the year 33658; longer is not a timestamp


class SignatureRejected(Exception):
    """The request is not provably SendGrid's, or is too old or too new (a replay); answer 403."""


class WebhookKeyError(ValueError):
    """KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER P-256 public key."""


def load_public_key(key_b64: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key as shown in its settings (base64 DER SubjectPublicKeyInfo)."""
    setting = "KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY"
    try:
        der = base64.b64decode("".join(key_b64.split()), validate=True)
        key = load_der_public_key(der)
    except (binascii.Error, ValueError, UnsupportedAlgorithm) as exc:
        raise WebhookKeyError(
            f"{setting} is not a base64 DER public key ({exc}); copy the verification key from SendGrid's "
            "Settings → Mail Settings → Event Webhook → Signature Verification"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise WebhookKeyError(f"{setting} must be an ECDSA P-256 key (SendGrid's signed webhook uses P-256)")
    return key


@dataclass(frozen=True)
class WebhookVerifier:
    """Checks one request's signature and freshness.

    ``max_age_seconds=None`` turns the replay window off (only for checking SendGrid's published test vector).
    ``clock_skew_seconds`` is how far ahead of our clock a timestamp may be: SendGrid's clock and ours are both
    NTP-synchronised but never identical, and a post signed "now" must not bounce because our clock lags a
    little. Anything further ahead is refused: a future timestamp would stretch the replay window.
    """

    public_key: ec.EllipticCurvePublicKey
    max_age_seconds: int | None = 600
    clock_skew_seconds: int = 30

    @classmethod
    def from_base64(
        cls, key_b64: str, max_age_seconds: int | None = 600, clock_skew_seconds: int = 30
    ) -> WebhookVerifier:
        return cls(load_public_key(key_b64), max_age_seconds, clock_skew_seconds)

    def check_timestamp(self, timestamp: str | None, now: float | None = None) -> str:
        """Refuse a missing, malformed, stale or future timestamp; cheap, so done before reading the body."""
        if not timestamp:
            raise SignatureRejected(f"missing {TIMESTAMP_HEADER}")
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
            raise SignatureRejected(f"{TIMESTAMP_HEADER} is not epoch seconds")
        if self.max_age_seconds is None:
            return timestamp
        age = (time.time() if now is None else now) - int(timestamp)
        if age > self.max_age_seconds:
            raise SignatureRejected(f"timestamp is {age:.0f} s old (limit {self.max_age_seconds} s): replay")
        if age < -self.clock_skew_seconds:
            raise SignatureRejected(f"timestamp is {-age:.0f} s in the future (allowance {self.clock_skew_seconds} s)")
        return timestamp

    def verify(self, body: bytes, signature: str | None, timestamp: str | None, now: float | None = None) -> None:
        """Raise SignatureRejected unless ``signature`` signs ``timestamp`` + ``body`` (the raw bytes) and is fresh."""
        timestamp = self.check_timestamp(timestamp, now)
        if not signature:
            raise SignatureRejected(f"missing {SIGNATURE_HEADER}")
        try:
            der_signature = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SignatureRejected(f"{SIGNATURE_HEADER} is not base64") from exc
        try:
            self.public_key.verify(der_signature, timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError) as exc:
            raise SignatureRejected("signature does not match the body and timestamp") from exc
