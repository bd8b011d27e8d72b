"""Secret lookup, the one place: a setting's value first, else a Prefect Secret block by name; never logged."""

from __future__ import annotations

from pydantic import SecretStr


class MissingSecretError(ValueError):
    """A secret is not set, or its Prefect Secret block cannot be loaded or is empty; names where to set it."""


def resolve_secret(
    value: SecretStr | None,
    block: str | None,
    what: str,
    env_name: str,
    error: type[Exception] = MissingSecretError,
) -> str:
    """The secret's text, from `value` (an environment variable) or the Prefect Secret block named `block`.

    `what` names the secret for people ("the HubSpot token"), `env_name` the variable to set; `error` is the
    exception the caller's readers expect. Errors name the setting or the block, never a value. A value of
    only spaces counts as unset (a stray newline in .env is not a secret).
    """
    if value is not None and value.get_secret_value().strip():
        return value.get_secret_value()
    if block:
        # Imported here: most runs keep their secrets in the environment and never need Prefect's client.
        from prefect.blocks.system import Secret

        try:
            secret = Secret.load(block).get()  # type: ignore[union-attr]
        except ValueError as exc:  # Prefect says "Unable to find block document named ..."
            raise error(f"{what}: Prefect Secret block {block!r} could not be loaded ({exc})") from None
        if secret:
            return str(secret)
        raise error(f"{what}: Prefect Secret block {block!r} is empty")
    raise error(f"{what} is not set: set {env_name} (or {env_name}_BLOCK, the name of a Prefect Secret block)")
