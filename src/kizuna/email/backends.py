"""Choosing the email backend once, from settings (KIZUNA_EMAIL_BACKEND = outbox | sendgrid)."""

from __future__ import annotations

from kizuna.core.settings import Settings
from kizuna.email.message import EmailBackend
from kizuna.email.outbox import OutboxBackend


def make_backend(settings: Settings) -> EmailBackend:
    """The configured delivery backend; sendgrid fails fast without an API key, naming the setting."""
    if settings.email_backend == "outbox":
        return OutboxBackend(settings.outbox_dir)
    if settings.email_backend == "sendgrid":
        from kizuna.email.sendgrid import SendGridBackend

        return SendGridBackend.from_settings(settings)
    raise ValueError(f"KIZUNA_EMAIL_BACKEND={settings.email_backend!r}: use outbox or sendgrid")
