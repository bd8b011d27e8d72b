"""Alerts on a failed run or a held campaign: a Slack-style webhook URL, or a Prefect notification block by name."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable
from typing import Any

import httpx

from kizuna.core.settings import Settings

log = logging.getLogger(__name__)

MAX_TEXT = 3000  # Slack shows about this much of a message; the rest is in the flow run's logs


class AlertError(RuntimeError):
    """The alert could not be delivered; the message names the setting to check."""


def _secrets(settings: Settings) -> list[str]:
    values = [settings.unsubscribe_secret.get_secret_value()]
    for secret in (settings.sendgrid_api_key, settings.alert_webhook_url):
        if secret is not None:
            values.append(secret.get_secret_value())
    return [v for v in values if len(v) >= 6]


def redact(text: str, settings: Settings) -> str:
    """Replace every secret setting's value that appears in text (an error message may quote a URL or key)."""
    for value in _secrets(settings):
        text = text.replace(value, "[redacted]")
    return text


def configured(settings: Settings) -> bool:
    return settings.alert_webhook_url is not None or bool(settings.alert_block)


class _HideText(logging.Filter):
    """Replace a secret in a library's log records (the webhook URL is the secret: its path is the token)."""

    def __init__(self, secret: str, shown: str) -> None:
        super().__init__()
        self.secret, self.shown = secret, shown

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret and self.secret in message:
            record.msg, record.args = message.replace(self.secret, self.shown), ()
        return True


def notify(settings: Settings, subject: str, body: str, *, timeout: float = 10.0) -> bool:
    """Send one alert; False when no alert is configured. Secrets are removed from subject and body."""
    subject, body = redact(subject, settings), redact(body, settings)[:MAX_TEXT]
    if settings.alert_webhook_url is not None:
        url = settings.alert_webhook_url.get_secret_value()
        hide_url = _HideText(url, "[alert webhook URL]")
        logging.getLogger("httpx").addFilter(hide_url)  # httpx logs every request's full URL at INFO
        try:
            # Slack's incoming-webhook shape; Mattermost, Teams workflows and most chat webhooks accept it too.
            response = httpx.post(url, json={"text": f"*{subject}*\n{body}"}, timeout=timeout)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise AlertError(f"alert webhook (KIZUNA_ALERT_WEBHOOK_URL) failed: {redact(str(exc), settings)}") from None
        finally:
            logging.getLogger("httpx").removeFilter(hide_url)
        return True
    if settings.alert_block:
        from prefect.blocks.abstract import NotificationBlock
        from prefect.blocks.core import Block

        try:
            block = Block.load(settings.alert_block)
        except ValueError as exc:
            raise AlertError(
                f"KIZUNA_ALERT_BLOCK={settings.alert_block!r}: no such Prefect block ({exc}); "
                "create it in the UI or with `prefect block create`, as <block-type-slug>/<name>"
            ) from exc
        if not isinstance(block, NotificationBlock):
            raise AlertError(f"KIZUNA_ALERT_BLOCK={settings.alert_block!r} is not a notification block")
        sent: Any = block.notify(body, subject=subject)  # Prefect's blocks answer sync callers synchronously
        if inspect.isawaitable(sent):  # a custom block with only an async notify
            asyncio.run(_wait(sent))
        return True
    return False


async def _wait(pending: Awaitable[Any]) -> None:
    await pending


def notify_quietly(settings: Settings, subject: str, body: str) -> bool:
    """notify(), logging instead of raising: an alert that cannot be sent must not change the run's outcome."""
    try:
        return notify(settings, subject, body)
    except Exception as exc:
        log.error("could not send the alert %r: %s", subject, redact(str(exc), settings))
        return False
