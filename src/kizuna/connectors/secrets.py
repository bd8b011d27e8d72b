"""Connector secrets: an environment value first, else a Prefect Secret block by name; never logged."""

from __future__ import annotations

from pydantic import SecretStr

from kizuna.connectors.base import ConnectorError


def resolve_secret(value: SecretStr | None, block: str | None, what: str, env_name: str) -> str:
    """The secret's text, from `value` (an environment variable) or the Prefect Secret block named `block`.

    `what` names the secret for people ("the HubSpot token"), `env_name` the variable to set. Errors name the
    setting or the block, never a value.
    """
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    if block:
        from prefect.blocks.system import Secret

        try:
            secret = Secret.load(block).get()  # type: ignore[union-attr]
        except ValueError as exc:  # Prefect says "Unable to find block document named ..."
            raise ConnectorError(f"{what}: Prefect Secret block {block!r} could not be loaded ({exc})") from None
        if secret:
            return str(secret)
        raise ConnectorError(f"{what}: Prefect Secret block {block!r} is empty")
    raise ConnectorError(f"{what} is not set: set {env_name} (or {env_name}_BLOCK, the name of a Prefect Secret block)")
