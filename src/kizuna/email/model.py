"""What rendering takes and gives: the sender every footer shows, and one recipient's rendered email."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sender:
    """Who sends, as shown in every footer."""

    name: str
    email: str
    postal_address: str
    contact: str


@dataclass(frozen=True)
class RenderedEmail:
    """One recipient's email, ready to be addressed (see kizuna.email.message.build_message)."""

    subject: str
    html: str
    text: str
    template: str
    locale: str
    categories: tuple[str, ...]
    unsubscribe_group: int | None
    from_name: str
    from_email: str
    reply_to: str | None
    unsubscribe_url: str
