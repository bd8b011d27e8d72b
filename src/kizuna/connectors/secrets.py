"""Connector secrets: kizuna.core.secrets' lookup, its failures raised as ConnectorError like every pull's."""

from __future__ import annotations

from pydantic import SecretStr

from kizuna.connectors.base import ConnectorError
from kizuna.core import secrets


def resolve_secret(value: SecretStr | None, block: str | None, what: str, env_name: str) -> str:
    """The secret's text (kizuna.core.secrets.resolve_secret); errors name the setting or block, never a value."""
    return secrets.resolve_secret(value, block, what, env_name, ConnectorError)
