"""The SendGrid backend: one v3 mail/send request per message, each answer classified for the send ledger.

Answers: 200/202 → accepted (X-Message-Id); 400, 413 and other 4xx → PermanentSendError with SendGrid's own
message (sanitised); 401/403 also halt the backend, so the rest of the run stays pending instead of
hammering a bad key; 429 → every worker waits until X-RateLimit-Reset and the message is tried again, as
long as the storm of 429s (since the last other answer) stays within ``max_rate_limit_wait`` seconds; past
that DeferredSendError, and the backend halts so the rest of the run stays pending; 5xx, timeouts and
connections lost mid-request → UncertainSendError: SendGrid may have queued the mail, and there is no
idempotency key, so it is never resent blindly (docs/delivery.md says how ``unknown`` is reconciled). A
refused connection, an unknown host or a request that could not be built sent nothing: DeferredSendError,
and the backend halts. Anything unforeseen is UncertainSendError, its text scrubbed of the key.

Transports. ``official`` (the default) posts through the official ``sendgrid.SendGridAPIClient``. It opens
a new urllib opener and a new connection for every request and spends ≈ 1 ms of CPU on it, so threads stop
helping early (bench/delivery, 2 busy shared cores: ≈ 740-1,050 messages/s to an instant stand-in,
≈ 620-755/s with 50 ms answers at 64 in flight). ``pooled`` (KIZUNA_SENDGRID_TRANSPORT=pooled) posts the
very same JSON over one keep-alive ``http.client`` connection per worker thread (standard library, no new
TCP/TLS handshake per message; ≈ 0.2 ms CPU): ≈ 2,800-3,400/s instant at 16 in flight, ≈ 1,900-2,100/s with
50 ms answers at 128 in flight. Both share the payload, the rate limiter and the classification; only the
POST differs. Use pooled for campaigns of many thousands.

The API key lives only in the Authorization header: it is never logged (the sendgrid client's DEBUG log
of request headers is filtered out), never part of an exception message or a ledger error.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
import urllib.error
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from kizuna.email.api_keys import (
    InvalidApiKeyError,
    MissingApiKeyError,
    configured_api_key,
    key_problem,
    scrub,
)
from kizuna.email.api_keys import redact_api_keys as redact_api_keys  # where the ledger has always imported it
from kizuna.email.message import (
    DeferredSendError,
    OutgoingMessage,
    PermanentSendError,
    SendError,
    UncertainSendError,
)

if TYPE_CHECKING:
    from kizuna.core.settings import Settings

log = logging.getLogger(__name__)

MAIL_SEND_PATH = "/v3/mail/send"
MAX_RATE_LIMIT_RETRIES = 5
IDLE_RECONNECT_SECONDS = 30.0  # reconnect rather than reuse a connection the server may have closed


class ForgeableUnsubscribeSecretError(ValueError):
    """KIZUNA_UNSUBSCRIBE_SECRET is the public demo default (or too short): anyone could forge unsubscribe links."""


class RateLimiter:
    """At most ``rate`` acquisitions per second across threads, and a shared pause after a 429."""

    def __init__(self, rate_per_second: float) -> None:
        self._interval = 1.0 / rate_per_second if rate_per_second > 0 else 0.0
        self._lock = threading.Lock()
        self._next = 0.0
        self._paused_until = 0.0

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next, self._paused_until)
            self._next = slot + self._interval
        if slot > now:
            time.sleep(slot - now)

    def pause_until(self, monotonic_deadline: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, monotonic_deadline)


class _Answer:
    """Status, headers and body of one HTTP answer, whichever transport produced it."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body


class SendGridBackend:
    """Sends through SendGrid's v3 mail/send; thread-safe; see the module docstring for the answers."""

    name = "sendgrid"
    idempotent_per_key = False  # SendGrid has no idempotency key: a retried POST sends again

    def __init__(
        self,
        api_key: str,
        host: str = "https://api.sendgrid.com",
        *,
        timeout: float = 10.0,
        sandbox_mode: bool = False,
        open_tracking: bool = True,
        click_tracking: bool = True,
        rate_per_second: float = 0.0,
        max_rate_limit_wait: float = 120.0,
        transport: Literal["official", "pooled"] = "official",
    ) -> None:
        api_key = api_key.strip()  # a key pasted with a newline (echo >> .env) is the same key
        if not api_key:
            raise MissingApiKeyError("the SendGrid API key is empty: set KIZUNA_SENDGRID_API_KEY")
        if problem := key_problem(api_key):
            raise InvalidApiKeyError(problem)  # now, not per message: no header could carry it
        if key_problem(host.strip()):
            raise ValueError("KIZUNA_SENDGRID_API_HOST has a space, line break or non-ASCII character")
        host = host.strip()
        self.host = host.rstrip("/")
        self.timeout = timeout
        self.transport = transport
        self.sandbox_mode = sandbox_mode
        self.max_rate_limit_wait = max_rate_limit_wait
        self._tracking = {
            "open_tracking": {"enable": open_tracking},
            "click_tracking": {"enable": click_tracking, "enable_text": False},
        }
        self._key = api_key
        self._limiter = RateLimiter(rate_per_second)
        self._halted: str | None = None
        self._rate_limited_since: float | None = None  # first 429 with no other answer since (a storm's start)
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        if transport == "official":
            import sendgrid  # the official client; imported here so the outbox path never needs it

            self._client = sendgrid.SendGridAPIClient(api_key, host=self.host)
            self._client.client.timeout = timeout
            # A str body is sent as is only when Content-Type is not exactly application/json; otherwise the
            # client would json.dumps it again. Our JSON keeps Japanese as UTF-8 (not \u escapes): smaller.
            self._client.client.request_headers["Content-Type"] = "application/json; charset=utf-8"
        elif transport != "pooled":
            raise ValueError(f"KIZUNA_SENDGRID_TRANSPORT={transport!r}: use official or pooled")
        parts = urlsplit(self.host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"KIZUNA_SENDGRID_API_HOST={host!r} is not an http(s) URL")
        self._scheme, self._netloc, self._base_path = parts.scheme, parts.netloc, parts.path.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> SendGridBackend:
        """The backend as configured; refuses to start while unsubscribe links could be forged."""
        if problem := settings.unsubscribe_secret_problem():
            raise ForgeableUnsubscribeSecretError(problem)
        return cls(
            configured_api_key(settings),
            settings.sendgrid_api_host,
            timeout=settings.sendgrid_timeout_seconds,
            sandbox_mode=settings.sendgrid_sandbox_mode,
            open_tracking=settings.sendgrid_open_tracking,
            click_tracking=settings.sendgrid_click_tracking,
            rate_per_second=settings.send_rate_per_second,
            max_rate_limit_wait=settings.sendgrid_max_rate_limit_wait_seconds,
            transport=settings.sendgrid_transport,
        )

    def __repr__(self) -> str:  # never the key
        return f"SendGridBackend(host={self.host!r}, transport={self.transport!r}, sandbox={self.sandbox_mode})"

    # -- the interface -----------------------------------------------------------------------------------

    def send(self, message: OutgoingMessage) -> str:
        try:
            return self._send(message)
        except SendError:
            raise
        except Exception as exc:  # unforeseen: the request may have gone out; never with the key in the text
            raise UncertainSendError(
                f"{type(exc).__name__}: {self._scrub(str(exc))[:500]} (may have been queued; reconcile with "
                "processed events)"
            ) from None

    def _send(self, message: OutgoingMessage) -> str:
        payload = json.dumps(self.payload(message), ensure_ascii=False).encode("utf-8")
        for _attempt in range(MAX_RATE_LIMIT_RETRIES + 1):
            if self._halted:
                raise DeferredSendError(self._halted)
            self._limiter.acquire()
            answer = self._post(payload)
            if answer.status != 429:
                self._rate_limited_since = None  # answered: whatever storm there was is over
            if answer.status in (200, 202):
                # 200 is sandbox mode's answer: validated, nothing queued, no message id.
                return answer.headers.get("x-message-id") or f"sandbox-{message.message_key}"
            if answer.status == 429:
                self._wait_for_reset(answer)
                continue
            reason = f"SendGrid {answer.status}: {self._error_text(answer.body)}"
            if answer.status in (401, 403):
                self._halted = (
                    f"not sent: an earlier request was refused with {answer.status}; "
                    "check KIZUNA_SENDGRID_API_KEY and its mail.send scope"
                )
                log.error("SendGrid refused the API key (%s); the rest of this run stays pending", answer.status)
            if 400 <= answer.status < 500:
                raise PermanentSendError(reason)
            raise UncertainSendError(f"{reason} (may have been queued; reconcile with processed events)")
        raise DeferredSendError(f"not sent: still rate limited after {MAX_RATE_LIMIT_RETRIES} waits")

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    # -- the request ---------------------------------------------------------------------------------------

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        """The v3 mail/send JSON for one message: one personalization, text before HTML (RFC 2046 order)."""
        to: dict[str, str] = {"email": message.to_email}
        if message.to_name:
            to["name"] = message.to_name
        personalization: dict[str, Any] = {"to": [to]}
        if message.cc:
            personalization["cc"] = [{"email": cc} for cc in message.cc]
        sender: dict[str, str] = {"email": message.from_email}
        if message.from_name:
            sender["name"] = message.from_name
        body: dict[str, Any] = {
            "personalizations": [personalization],
            "from": sender,
            "subject": message.subject,
            "content": [{"type": "text/plain", "value": message.text}, {"type": "text/html", "value": message.html}],
            "custom_args": message.custom_args,
            "tracking_settings": self._tracking,
        }
        if message.reply_to:
            body["reply_to"] = {"email": message.reply_to}
        if message.headers:
            body["headers"] = message.headers
        if message.categories:
            body["categories"] = message.categories
        if message.unsubscribe_group is not None:
            body["asm"] = {"group_id": message.unsubscribe_group}
        if self.sandbox_mode:
            body["mail_settings"] = {"sandbox_mode": {"enable": True}}
        return body

    def _post(self, payload: bytes) -> _Answer:
        try:
            return self._post_official(payload) if self.transport == "official" else self._post_pooled(payload)
        except (ValueError, TypeError) as exc:
            # Raised while the request was being built (a header or URL no HTTP request can carry), before a
            # byte left: nothing was sent, so the key stays pending, and every other message would fail alike.
            self._halted = (
                f"not sent: the request could not be built ({type(exc).__name__}: {self._scrub(str(exc))[:300]}); "
                "check KIZUNA_SENDGRID_API_KEY and KIZUNA_SENDGRID_API_HOST"
            )
            raise DeferredSendError(self._halted) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # TimeoutError and connection errors are OSErrors; urllib wraps them in URLError.
            reason = getattr(exc, "reason", None) or exc
            if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
                # Refused or unresolvable before a connection existed: provably not sent, so pending, not unknown.
                self._halted = (
                    f"not sent: could not connect to {self.host} ({type(reason).__name__}: "
                    f"{self._scrub(str(reason))}); the next run sends it"
                )
                log.error("%s; the rest of this run stays pending", self._halted)
                raise DeferredSendError(self._halted) from None
            raise UncertainSendError(
                f"no answer from {self.host} ({type(reason).__name__}: {self._scrub(str(reason))}); "
                "may have been queued: reconcile with processed events"
            ) from None

    def _post_official(self, payload: bytes) -> _Answer:
        from python_http_client.exceptions import HTTPError

        try:
            response = self._client.client.mail.send.post(request_body=payload.decode("utf-8"))
        except HTTPError as exc:
            return _Answer(int(exc.status_code), dict(exc.headers or {}), exc.body or b"")
        return _Answer(int(response.status_code), dict(response.headers or {}), response.body or b"")

    def _post_pooled(self, payload: bytes) -> _Answer:
        connection, last_used = getattr(self._local, "connection", None), getattr(self._local, "last_used", 0.0)
        if connection is not None and time.monotonic() - last_used > IDLE_RECONNECT_SECONDS:
            connection.close()
            connection = None
        if connection is None:
            connection = self._connect()
        try:
            connection.request("POST", self._base_path + MAIL_SEND_PATH, body=payload, headers=self._headers)
            response = connection.getresponse()
            body = response.read()
        except BaseException:
            connection.close()
            self._local.connection = None
            raise
        if response.will_close:
            connection.close()
            self._local.connection = None
        self._local.last_used = time.monotonic()
        return _Answer(response.status, dict(response.getheaders()), body)

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        connection = cls(self._netloc, timeout=self.timeout)
        connection.connect()
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._local.connection = connection
        with self._lock:
            self._connections.append(connection)
        return connection

    # -- answers -------------------------------------------------------------------------------------------

    def _wait_for_reset(self, answer: _Answer) -> None:
        try:
            reset = float(answer.headers.get("x-ratelimit-reset", ""))
            wait = max(0.0, reset - time.time())
        except ValueError:
            wait = 1.0  # no usable header: a short pause, then try again
        now = time.monotonic()
        with self._lock:
            since = self._rate_limited_since = self._rate_limited_since or now
        # The limit is on the whole storm, not on each 429: waiting per message, a long storm would keep a
        # campaign busy for (messages / concurrency) x retries x reset. Past it, the rest of the run stays pending.
        if (now - since) + wait > self.max_rate_limit_wait:
            self._halted = (
                f"not sent: rate limited for {now - since + wait:.0f} s, longer than "
                f"KIZUNA_SENDGRID_MAX_RATE_LIMIT_WAIT_SECONDS={self.max_rate_limit_wait:g}; the next run sends it"
            )
            raise DeferredSendError(self._halted)
        log.warning("SendGrid answered 429; all senders wait %.1f s (X-RateLimit-Reset)", wait)
        self._limiter.pause_until(time.monotonic() + wait)

    def _error_text(self, body: bytes) -> str:
        """SendGrid's error messages (JSON errors[].message/field), one line, ≤ 500 characters, no key."""
        text = body.decode("utf-8", "replace")
        try:
            errors = json.loads(text).get("errors") or []
            parts = [
                f"{e.get('message')}" + (f" (field {e['field']})" if e.get("field") else "")
                for e in errors
                if isinstance(e, dict)
            ]
            text = "; ".join(parts) or text
        except (ValueError, AttributeError):
            pass
        return self._scrub(text)[:500] or "(no message)"

    def _scrub(self, text: str) -> str:
        return scrub(text, self._key)
