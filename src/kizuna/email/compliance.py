"""What every rendered email must satisfy before it is sent: a one-line subject, and the footer 特定電子メール法 requires."""

from __future__ import annotations

import re

from markupsafe import escape

from kizuna.email.errors import ComplianceError, InvalidSubjectError
from kizuna.email.model import Sender

# Unicode categories Cc, Zl and Zp (controls, line and paragraph separators; fixed by Unicode's stability
# policy): a subject with one would break or inject mail headers.
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Those, plus the explicit embeddings, overrides and isolates (bidi controls): never wanted in a subject.
_NOT_IN_A_SUBJECT = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def check_subject(subject: str, name: str) -> None:
    """Refuse an empty subject, or one a mail header cannot carry or that misleads the reader."""
    if not subject:
        raise InvalidSubjectError(f"{name} rendered an empty subject")
    if _NOT_IN_A_SUBJECT.search(subject):
        if _LINE_BREAKING.search(subject):
            raise InvalidSubjectError(
                f"{name} rendered a subject with a line break or control character "
                f"({subject!r}); a subject must be one line (check the values it uses)"
            )
        # U+202E and friends reorder what the reader sees ("invoice\u202efdp.exe"): a deceptive subject.
        raise InvalidSubjectError(
            f"{name} rendered a subject with a bidirectional control character "
            f"({subject!r}); remove it from the values the subject uses"
        )


class FooterCheck:
    """Whether a message shows the sender, postal address, contact and unsubscribe link (特定電子メール法)."""

    def __init__(self, sender: Sender) -> None:
        # The footer values that are the same in every message, as text and as escaped HTML.
        self._required = tuple(
            (what, value, str(escape(value)))
            for what, value in (
                ("sender name", sender.name),
                ("postal address", sender.postal_address),
                ("contact", sender.contact),
            )
        )

    def check(self, template: str, locale: str, html: str, text: str, unsubscribe_url: str) -> None:
        required = (*self._required, ("unsubscribe link", unsubscribe_url, str(escape(unsubscribe_url))))
        for part, absent in (
            ("html", [what for what, value, escaped in required if escaped not in html and value not in html]),
            ("txt", [what for what, value, _ in required if value not in text]),
        ):
            if absent:
                raise ComplianceError(
                    f"{template}/body.{locale}.{part}.j2 does not show the {', '.join(absent)} that "
                    "advertising email must carry (特定電子メール法): extend the _layouts/base layout"
                )
