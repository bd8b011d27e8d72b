"""Unsubscribe tokens: the contact id with an HMAC, so a link only ever unsubscribes its own recipient."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

from kizuna.email.render import contact_token_from_context


def sign_contact(contact_id: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), contact_id.encode(), hashlib.sha256).hexdigest()[:20]
    return f"{contact_id}.{digest}"


def verify_token(token: str, secret: str) -> str | None:
    """The contact id of a valid token, None for a forged or damaged one."""
    contact_id, _, _ = token.rpartition(".")
    if contact_id and hmac.compare_digest(sign_contact(contact_id, secret), token):
        return contact_id
    return None


def signed_token_factory(secret: str) -> Callable[[Mapping[str, Any]], str]:
    """A contact_token function for TemplateRenderer that signs the recipient's contact id."""

    def token(context: Mapping[str, Any]) -> str:
        return sign_contact(contact_token_from_context(context), secret)

    return token
