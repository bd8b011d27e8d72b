"""The message every email backend sends, the backend interface, and building a message from a render."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from kizuna.email.model import RenderedEmail

ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058
_NOT_ONE_ADDRESS = re.compile(r'[\s<>,;:"()]')  # whitespace (as str.isspace), a list, group or display-name mark
# Everything str.splitlines() splits on: Python's mail library refuses each of them in a header.
_LINE_BREAK = re.compile("[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


class InvalidMessageError(ValueError):
    """An OutgoingMessage that no backend should send."""


class SendError(Exception):
    """A send that returned no provider id; the subclass says what the send ledger records."""


class PermanentSendError(SendError):
    """The provider refused the message (e.g. SendGrid 400): not queued; ledger state failed_permanent."""


class UncertainSendError(SendError):
    """The message may or may not have been queued (5xx, timeout, lost connection); ledger state unknown."""


class DeferredSendError(SendError):
    """Provably not sent this time (a rate-limit wait too long, the backend halted); the key stays pending."""


@dataclass(frozen=True)
class OutgoingMessage:
    """One email to one recipient. ``message_key`` is the caller's idempotency key (one per send)."""

    message_key: str
    to_email: str
    to_name: str
    from_email: str
    from_name: str
    subject: str
    html: str
    text: str
    cc: list[str] = field(default_factory=list)
    reply_to: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)
    custom_args: dict[str, str] = field(default_factory=dict)  # echoed on provider events; no personal data
    unsubscribe_group: int | None = None  # SendGrid ASM group id

    def __post_init__(self) -> None:
        if not self.message_key.strip():
            raise InvalidMessageError("message_key is empty: the caller must give each send its own key")
        for what, address in (
            ("to_email", self.to_email),
            ("from_email", self.from_email),
            *(("cc", a) for a in self.cc),
            *((("reply_to", self.reply_to),) if self.reply_to else ()),
        ):
            if "@" not in address or _NOT_ONE_ADDRESS.search(address):
                raise InvalidMessageError(f"{what} {address!r} is not a single email address ({self.message_key})")
        for what, value in (
            ("to_name", self.to_name),
            ("from_name", self.from_name),
            ("subject", self.subject),
            ("reply_to", self.reply_to or ""),
            *((f"header {k}", f"{k}{v}") for k, v in self.headers.items()),
        ):
            if _LINE_BREAK.search(value):
                raise InvalidMessageError(f"{what} contains a line break ({self.message_key}): header injection")
        if not self.subject.strip():
            raise InvalidMessageError(f"subject is empty ({self.message_key})")
        for value in self.custom_args.values():
            if not isinstance(value, str):
                bad_args = [k for k, v in self.custom_args.items() if not isinstance(v, str)]
                raise InvalidMessageError(f"custom_args values must be strings (SendGrid): {bad_args}")


class EmailBackend(Protocol):
    """Hands messages to a provider (SendGrid) or a local stand-in (the outbox)."""

    name: str
    # True only when sending the same message_key twice cannot deliver two copies.
    idempotent_per_key: bool

    def send(self, message: OutgoingMessage) -> str:
        """Send one message; return the provider's message id. Safe to call from several threads.

        Raises PermanentSendError, UncertainSendError or DeferredSendError (see each); any other exception
        counts as uncertain unless the backend is idempotent per key.
        """
        ...

    def close(self) -> None:
        """Release connections; the backend is not used afterwards."""
        ...


@runtime_checkable
class BatchSyncedBackend(Protocol):
    """A backend that can write a batch and make it durable with one barrier (the outbox)."""

    def send_unsynced(self, message: OutgoingMessage) -> str:
        """As send, but durable only after the next sync()."""
        ...

    def sync(self) -> None:
        """Make everything send_unsynced returned so far durable; raises OSError if it could not."""
        ...


def unsubscribe_headers(unsubscribe_url: str, mailto: str | None = None) -> dict[str, str]:
    """List-Unsubscribe with RFC 8058 one-click (Gmail/Yahoo bulk-sender rules)."""
    targets = [f"<{unsubscribe_url}>"] + ([f"<mailto:{mailto}?subject=unsubscribe>"] if mailto else [])
    return {"List-Unsubscribe": ", ".join(targets), "List-Unsubscribe-Post": ONE_CLICK}


def build_message(
    rendered: RenderedEmail,
    recipient_email: str,
    recipient_name: str,
    message_key: str,
    unsubscribe_url: str | None = None,
    *,
    cc: Iterable[str] = (),
    reply_to: str | None = None,
    custom_args: Mapping[str, str] | None = None,
    extra_categories: Iterable[str] = (),
    headers: Mapping[str, str] | None = None,
) -> OutgoingMessage:
    """An OutgoingMessage from a render and a recipient.

    ``unsubscribe_url`` defaults to the one the footer shows (``rendered.unsubscribe_url``): the header and
    the footer must point to the same place. ``reply_to`` overrides meta.yml's (e.g. the account owner).
    """
    url = unsubscribe_url or rendered.unsubscribe_url
    categories = list(dict.fromkeys([*rendered.categories, *extra_categories]))
    return OutgoingMessage(
        message_key=message_key,
        to_email=recipient_email.strip(),
        to_name=" ".join(recipient_name.split()),
        cc=[c.strip() for c in cc],
        from_email=rendered.from_email,
        from_name=rendered.from_name,
        reply_to=reply_to or rendered.reply_to,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        headers={**unsubscribe_headers(url), **(headers or {})},
        categories=categories,
        custom_args={"send_id": message_key, "template": rendered.template, **(custom_args or {})},
        unsubscribe_group=rendered.unsubscribe_group,
    )
