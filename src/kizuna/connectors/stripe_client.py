"""The Stripe API as the connector uses it: one StripeClient, list pages, waits on 429, errors without the key.

Retries. stripe-python 16 retries by itself (``max_network_retries``) on connection errors and timeouts,
on 409 and every 5xx, and whenever the answer carries ``Stripe-Should-Retry: true`` (never when it says
``false``), sleeping 0.5 s x 2^(n-1), at most 5 s, jittered to between half and all of that. It does not
retry a 429 (unless told by Stripe-Should-Retry) and it ignores Retry-After. So 429 is handled here: wait
Retry-After seconds when Stripe sends it (at most ``MAX_RETRY_AFTER_SECONDS``), else back off
exponentially, up to settings.connector_max_retries times. Both layers use the same retry budget.

The key lives only in the client's Authorization header: every message this module raises or logs is
passed through ``scrub`` first.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import stripe

from kizuna.connectors.base import ConnectorError
from kizuna.core import retry_after

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 60.0
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
_KEY_PATTERN = re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{4,}")
READS = "customers, subscriptions, invoices, events, products, prices and coupons"


class _RetriesOnly(logging.Filter):
    """stripe-python logs every request at INFO (method and URL; never the key): keep its retry lines only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "retry" in record.getMessage().lower()


logging.getLogger("stripe").addFilter(_RetriesOnly())


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After as seconds, capped (kizuna.core.retry_after); None when absent or unreadable."""
    return retry_after.retry_after_seconds(_header(headers, "retry-after"), MAX_RETRY_AFTER_SECONDS)


class StripeApi:
    """Calls through the official client; `what` names the Stripe object in every log line and error."""

    def __init__(self, api_key: str, base: str, *, max_retries: int, timeout: float, page_size: int) -> None:
        self._key = api_key
        self.base = base.rstrip("/")
        self.max_retries = max_retries
        self.page_size = page_size
        self.requests = 0
        http_client = stripe.RequestsClient(timeout=timeout)
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": self.base, "files": self.base, "connect": self.base, "meter_events": self.base},
            max_network_retries=max_retries,
            http_client=http_client,
        )

    def __repr__(self) -> str:  # never the key
        return f"StripeApi(base={self.base!r})"

    def scrub(self, text: str) -> str:
        if self._key:
            text = text.replace(self._key, "[key]")
        return _KEY_PATTERN.sub("[key]", text)

    def call(self, what: str, request: Callable[[], Any], *, missing_ok: bool = False) -> Any:
        """One request; 429 waited out and retried; anything else that fails becomes a ConnectorError.

        With ``missing_ok`` a 404 returns None (the object was deleted)."""
        attempt = 0
        while True:
            self.requests += 1
            try:
                return request()
            except stripe.RateLimitError as exc:
                headers = exc.headers
                if attempt >= self.max_retries or _header(headers, "stripe-should-retry") == "false":
                    raise ConnectorError(
                        f"stripe: {what}: still rate limited (429) after {attempt} retries; run again later, or "
                        "raise KIZUNA_CONNECTOR_MAX_RETRIES"
                    ) from None
                wait = retry_after_seconds(headers)
                why = "Retry-After"
                if wait is None:
                    wait = min(BACKOFF_SECONDS * 2**attempt, MAX_BACKOFF_SECONDS) * (0.5 + random.random() / 2)
                    why = "backoff"
                attempt += 1
                log.warning(
                    "stripe: %s: rate limited (429); waiting %.1f s (%s) before retry %d of %d",
                    what,
                    wait,
                    why,
                    attempt,
                    self.max_retries,
                )
                time.sleep(wait)
            except stripe.InvalidRequestError as exc:
                if missing_ok and exc.http_status == 404:
                    return None
                raise ConnectorError(f"stripe: {what}: Stripe refused the request: {self._message(exc)}") from None
            except stripe.AuthenticationError:
                raise ConnectorError(
                    f"stripe: {what}: the API key was refused (401); set a valid key in KIZUNA_STRIPE_API_KEY "
                    "or in the Prefect Secret block named by KIZUNA_STRIPE_API_KEY_BLOCK"
                ) from None
            except stripe.PermissionError:
                raise ConnectorError(
                    f"stripe: {what}: the key may not read this (403); give the restricted key read access to "
                    f"{READS} (docs/sources.md)"
                ) from None
            except stripe.APIConnectionError as exc:
                raise ConnectorError(
                    f"stripe: {what}: no answer from {self.base} after {self.max_retries} retries: {self._message(exc)}"
                ) from None
            except stripe.StripeError as exc:
                retried = f" after {self.max_retries} retries" if (exc.http_status or 0) >= 500 else ""
                raise ConnectorError(
                    f"stripe: {what}: Stripe answered {exc.http_status}{retried}: {self._message(exc)}"
                ) from None

    def _message(self, exc: stripe.StripeError) -> str:
        text = exc.user_message or str(exc) or type(exc).__name__
        return self.scrub(" ".join(text.split()))

    def get(
        self, what: str, path: str, params: Mapping[str, Any], *, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        """GET one API path through the client's `raw_request`: the library's auth, encoding, retries and typed
        errors, and the JSON as plain dicts (building its typed objects costs ≈ 4 ms each, docs/sources.md)."""
        response = self.call(what, lambda: self.client.raw_request("get", path, **params), missing_ok=missing_ok)
        return None if response is None else dict(response.data)

    def retrieve(self, what: str, path: str, obj_id: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """One object by id; None when Stripe no longer has it (404)."""
        return self.get(what, f"{path}/{quote(obj_id, safe='')}", params, missing_ok=True)

    def list_all(self, what: str, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every object of a list endpoint, page by page (`limit`, `starting_after`, `has_more`)."""
        query = {**params, "limit": self.page_size}
        page = 0
        while True:
            result = self.get(f"{what} page {page + 1}", path, query)
            assert result is not None
            page += 1
            data = list(result.get("data") or [])
            yield from data
            if not result.get("has_more") or not data:
                log.debug("stripe: %s: %d pages", what, page)
                return
            query["starting_after"] = data[-1]["id"]
