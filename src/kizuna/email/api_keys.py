"""SendGrid API keys: where the key comes from, why one cannot be sent, and how it is kept out of text and logs."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from kizuna.core.secrets import MissingSecretError, resolve_secret

if TYPE_CHECKING:
    from kizuna.core.settings import Settings

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SG_KEY = re.compile(r"SG\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")
_BEARER = re.compile(r"(?i)\b(bearer\s+)(?!\[api key\])[^\s'\"<>]+")
API_KEY_PLACEHOLDER = "[api key]"


def redact_api_keys(text: str) -> str:
    """``text`` without anything shaped like a SendGrid key or a bearer token: for every error that is stored."""
    return _SG_KEY.sub(API_KEY_PLACEHOLDER, _BEARER.sub(rf"\g<1>{API_KEY_PLACEHOLDER}", text))


class _NoDebugRecords(logging.Filter):
    """python_http_client logs request headers (the API key) and payloads (addresses) at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


for _name in ("python_http_client", "python_http_client.client"):
    logging.getLogger(_name).addFilter(_NoDebugRecords())


class MissingApiKeyError(MissingSecretError):
    """The sendgrid backend was chosen without an API key."""


class InvalidApiKeyError(ValueError):
    """The API key cannot be sent in a header (a line break, space or non-ASCII character inside it)."""


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an API key, without showing any of it; None when it can."""
    for position, char in enumerate(key, start=1):
        if 33 <= ord(char) <= 126:
            continue
        what = (
            "a line break"
            if char in "\r\n"
            else "a space"
            if char.isspace()
            else "a control character"
            if ord(char) < 32 or ord(char) == 127
            else "a non-ASCII character"
        )
        return (
            f"KIZUNA_SENDGRID_API_KEY has {what} at character {position} of {len(key)}: an API key is printable "
            "ASCII without spaces (was it pasted with something inside it?); copy it again from SendGrid's "
            "Settings → API Keys (the key itself is not shown here)"
        )
    return None


def configured_api_key(settings: Settings) -> str:
    """The configured key: KIZUNA_SENDGRID_API_KEY, else the Prefect Secret block KIZUNA_SENDGRID_API_KEY_BLOCK names."""
    return resolve_secret(
        settings.sendgrid_api_key,
        settings.sendgrid_api_key_block,
        "the SendGrid API key (KIZUNA_EMAIL_BACKEND=sendgrid)",
        "KIZUNA_SENDGRID_API_KEY",
        MissingApiKeyError,
    )


def scrub(text: str, key: str) -> str:
    """``text`` on one line, without ``key`` or anything else shaped like an API key."""
    return redact_api_keys(_CONTROL.sub(" ", text).replace(key, API_KEY_PLACEHOLDER)).strip()
