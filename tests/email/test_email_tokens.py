"""Unsubscribe tokens: a fixed format (links already sent must keep working) that only verifies unchanged."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from kizuna.email.render import MissingVariableError
from kizuna.email.tokens import sign_contact, signed_token_factory, verify_token

SECRET = "テスト用の秘密"


@pytest.mark.parametrize("contact_id", ["P-004567", "顧客.1", "a b&c"], ids=["plain", "non-ascii-with-dot", "reserved"])
def test_token_format_is_the_contact_id_and_20_hex_of_hmac_sha256(contact_id: str) -> None:
    expected = hmac.new(SECRET.encode(), contact_id.encode(), hashlib.sha256).hexdigest()[:20]

    assert sign_contact(contact_id, SECRET) == f"{contact_id}.{expected}"
    assert signed_token_factory(SECRET)({"contact_id": contact_id}) == f"{contact_id}.{expected}"
    assert verify_token(f"{contact_id}.{expected}", SECRET) == contact_id


def test_a_changed_token_or_another_secret_does_not_verify() -> None:
    token = sign_contact("P-004567", SECRET)
    digest = token.rpartition(".")[2]

    assert verify_token(token, "another secret") is None
    assert verify_token(f"P-004568.{digest}", SECRET) is None  # someone else's id with this digest
    assert verify_token(token[:-1] + ("0" if token[-1] != "0" else "1"), SECRET) is None
    assert verify_token(digest, SECRET) is None and verify_token("", SECRET) is None


def test_the_factory_prefers_contact_token_and_requires_an_id() -> None:
    token = signed_token_factory(SECRET)

    assert token({"contact_token": "T-1", "contact_id": "P-1"}) == sign_contact("T-1", SECRET)
    with pytest.raises(MissingVariableError, match="contact_id"):
        token({"contact_id": None})
