"""Verifying SendGrid's signed Event Webhook: ECDSA P-256 / SHA-256 over timestamp text + raw body, kept fresh."""

from __future__ import annotations

import base64
import binascii
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_der_public_key,
    load_pem_private_key,
)

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


class WebhookSigner:
    """A P-256 key pair that signs like SendGrid's signed webhook: for `kizuna events send-test`, never production.

    The private key is a PEM file (mode 0600) that is created once and then reused, so the receiver's
    KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY stays valid between tests.
    """

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self.private_key = private_key
        der = private_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        self.public_key_b64 = base64.b64encode(der).decode("ascii")

    @classmethod
    def load_or_create(cls, path: Path) -> tuple[WebhookSigner, bool]:
        """The key pair in ``path``, made there first if the file does not exist; (signer, created)."""
        if path.exists():
            key = load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
                raise WebhookKeyError(f"{path} is not a P-256 private key; delete it and a new one is made")
            return cls(key), False
        key = ec.generate_private_key(ec.SECP256R1())
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # a private key: readable by its owner only
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return cls(key), True

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """SendGrid's two headers for ``body``: the signature over timestamp text + raw body, and the timestamp."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.private_key.sign(stamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
        return {SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"), TIMESTAMP_HEADER: stamp}
