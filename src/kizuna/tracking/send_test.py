"""Sample SendGrid events, signed with a local test key and posted to a running receiver (`kizuna events send-test`)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from kizuna.tracking.signature import WebhookSigner

# One of each event SendGrid's Event Webhook sends, as SendGrid's own "Test Your Integration" does.
EVENT_KINDS = (
    "processed",
    "deferred",
    "delivered",
    "open",
    "click",
    "bounce",
    "dropped",
    "spamreport",
    "unsubscribe",
    "group_unsubscribe",
    "group_resubscribe",
)
TEST_CAMPAIGN = "kizuna-send-test"  # custom arg of every sample event, to tell them apart in ops.email_events
TEST_EMAIL = "kizuna-send-test@example.invalid"  # .invalid never receives mail (RFC 2606)


def sample_events(kinds: tuple[str, ...] = EVENT_KINDS, email: str = TEST_EMAIL) -> list[dict[str, Any]]:
    """SendGrid-shaped events (fields as SendGrid documents them), fresh ids each call, one message per run."""
    run = uuid.uuid4().hex[:12]
    now = int(time.time())
    message_id = f"send-test-{run}"
    events = []
    for n, kind in enumerate(kinds):
        event: dict[str, Any] = {
            "email": email,
            "timestamp": now,
            "event": kind,
            "sg_event_id": f"{TEST_CAMPAIGN}-{run}-{n:02d}",
            "sg_message_id": f"{message_id}.filterdrecv-send-test-{n}.0",
            "smtp-id": f"<{message_id}@kizuna.send-test>",
            "category": [TEST_CAMPAIGN],
            "send_id": f"{TEST_CAMPAIGN}-{run}",
            "run_id": f"{TEST_CAMPAIGN}-{run}",
            "campaign": TEST_CAMPAIGN,
        }
        if kind == "deferred":
            event.update(response="400 try again later", attempt="1")
        elif kind == "open":
            event.update(useragent="Mozilla/5.0 (kizuna send-test)", ip="192.0.2.1", sg_machine_open=False)
        elif kind == "click":
            event.update(url="https://example.com/kizuna-send-test", useragent="Mozilla/5.0", ip="192.0.2.1")
        elif kind == "bounce":
            event.update(type="bounce", status="5.1.1", reason="550 5.1.1 kizuna send-test: no such user")
        elif kind == "dropped":
            event.update(reason="Bounced Address", status="5.0.0")
        elif kind in ("group_unsubscribe", "group_resubscribe"):
            event.update(asm_group_id=1, useragent="Mozilla/5.0", ip="192.0.2.1")
        events.append(event)
    return events


@dataclass(frozen=True)
class PostResult:
    """The receiver's answer to one signed post."""

    status: int
    text: str
    events: int


def post_signed(url: str, events: list[dict[str, Any]], signer: WebhookSigner, *, timeout: float = 10.0) -> PostResult:
    """POST ``events`` as SendGrid does (one JSON array, signed over timestamp + raw body); httpx.HTTPError if
    the receiver cannot be reached."""
    body = json.dumps(events, ensure_ascii=False).encode("utf-8") + b"\r\n"  # SendGrid's bodies end in CRLF
    headers = {**signer.headers(body), "Content-Type": "application/json", "User-Agent": "kizuna events send-test"}
    response = httpx.post(url, content=body, headers=headers, timeout=timeout)
    return PostResult(response.status_code, response.text[:500], len(events))
