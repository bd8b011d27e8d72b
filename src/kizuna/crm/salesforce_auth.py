"""Salesforce over HTTP: the OAuth client-credentials token, retries that honour Salesforce's limits, no secrets.

One `SalesforceSession` per target. It asks the org's token endpoint for an access token (client-credentials
flow: POST /services/oauth2/token with the connected app's consumer key and secret) and learns the org's
instance URL from the answer. Every later call goes to that instance with ``Authorization: Bearer``.

Retries, bounded by ``max_retries`` per call:
- 401 INVALID_SESSION_ID (the token expired or was revoked): a new token, once, then the call again;
- 429, 503 and 403 REQUEST_LIMIT_EXCEEDED: wait Retry-After when sent (at most ``MAX_WAIT_SECONDS``), else back
  off exponentially; the waits are counted in TargetStats (retries_after_429, waited_seconds);
- other 5xx, timeouts and dropped connections: exponential backoff.
Anything else is a CrmError naming the object and the call. The client secret and the access token never reach
a message, a log line or a repr: messages pass through ``scrub``, and neither is kept as a plain attribute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from kizuna.core import retry_after
from kizuna.crm.target import CrmError, TargetStats

log = logging.getLogger(__name__)


class _NoSoqlInLogs(logging.Filter):
    """httpx logs every request's URL at INFO; a Salesforce query's URL carries its SOQL (emails, keys): drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 1 and "/services/data/" in str(args[1]) and "?" in str(args[1]):
            record.args = (args[0], str(args[1]).split("?")[0] + "?…", *args[2:])
        return True


logging.getLogger("httpx").addFilter(_NoSoqlInLogs())

MAX_WAIT_SECONDS = 60.0
BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
RATE_LIMITED = frozenset({429, 503})
TRANSIENT = frozenset({500, 502, 504})


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds, capped (kizuna.core.retry_after); None when absent or unreadable."""
    return retry_after.retry_after_seconds(headers.get("retry-after"), MAX_WAIT_SECONDS)


def error_text(response: httpx.Response) -> str:
    """Salesforce's error answer in one line: `CODE: message (fields)` for each error, or the OAuth error."""
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200] or f"HTTP {response.status_code}"
    if isinstance(payload, dict) and "error" in payload:  # the OAuth endpoint's shape
        return f"{payload.get('error')}: {payload.get('error_description', '')}".strip()
    items = payload if isinstance(payload, list) else [payload]
    parts = []
    for item in items:
        if isinstance(item, dict):
            code = item.get("errorCode") or item.get("statusCode") or "ERROR"
            fields = f" ({', '.join(item['fields'])})" if item.get("fields") else ""
            parts.append(f"{code}: {item.get('message', '')}{fields}")
    return "; ".join(parts) or f"HTTP {response.status_code}"


def _error_codes(response: httpx.Response) -> set[str]:
    try:
        payload = response.json()
    except ValueError:
        return set()
    items = payload if isinstance(payload, list) else [payload]
    return {str(i.get("errorCode")) for i in items if isinstance(i, dict) and i.get("errorCode")}


class SalesforceSession:
    """Authenticated calls to one org; `what` in each call names the object and call for errors and logs."""

    def __init__(
        self,
        login_url: str,
        client_id: str,
        client_secret: SecretStr | str,
        *,
        api_version: str = "v62.0",
        timeout: float = 60.0,
        max_retries: int = 5,
        stats: TargetStats | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.login_url = login_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        self._token: SecretStr | None = None
        self.instance_url = ""
        self.user_id = ""  # the connected app's run-as user
        self.api_version = api_version
        self.max_retries = max_retries
        self.stats = stats if stats is not None else TargetStats()
        self.sleep = sleep
        self._http = httpx.Client(timeout=timeout)

    def __repr__(self) -> str:  # never the secret or the token
        return f"SalesforceSession(login_url={self.login_url!r}, api_version={self.api_version!r})"

    def close(self) -> None:
        self._http.close()

    def scrub(self, text: str) -> str:
        for secret in (self._secret.get_secret_value(), self._token.get_secret_value() if self._token else ""):
            if secret:
                text = text.replace(secret, "[secret]")
        return text

    def data_path(self, suffix: str) -> str:
        """/services/data/<version><suffix>: where REST, Tooling and Bulk 2.0 resources live."""
        return f"/services/data/{self.api_version}{suffix}"

    # -- the token ---------------------------------------------------------------------------------------------

    def authenticate(self) -> None:
        """A new access token through the client-credentials flow; the instance URL from its answer."""
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret.get_secret_value(),
        }
        url = f"{self.login_url}/services/oauth2/token"
        response = self._send("OAuth token", "POST", url, "POST /services/oauth2/token", data=form)
        if response.status_code >= 500:
            raise CrmError(
                f"salesforce: OAuth token: the token endpoint answered {response.status_code}; run again later"
            )
        if response.status_code != 200:
            raise CrmError(
                f"salesforce: OAuth token: the org refused the connected app's credentials "
                f"({response.status_code} {self.scrub(error_text(response))}); check KIZUNA_SALESFORCE_LOGIN_URL "
                "(the org's My Domain URL), KIZUNA_SALESFORCE_CLIENT_ID and KIZUNA_SALESFORCE_CLIENT_SECRET, and "
                "that the client-credentials flow is enabled with a run-as user (docs/crm.md)"
            )
        payload = response.json()
        self._token = SecretStr(str(payload["access_token"]))
        self.instance_url = str(payload["instance_url"]).rstrip("/")
        self.user_id = str(payload.get("id") or "").rstrip("/").rsplit("/", 1)[-1]  # .../id/<org id>/<user id>

    # -- calls -------------------------------------------------------------------------------------------------

    def call(
        self,
        what: str,
        method: str,
        path: str,
        endpoint: str,
        *,
        ok: tuple[int, ...] = (200, 201, 204),
        **kwargs: Any,
    ) -> httpx.Response:
        """One call to the instance (`path` absolute from the host), retried as the module says; a CrmError
        naming `what` on any other answer. `endpoint` is the counter's label in stats.by_endpoint."""
        if self._token is None:
            self.authenticate()
        refreshed = False
        while True:
            headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self._token_value()}"}
            response = self._send(what, method, self.instance_url + path, endpoint, headers=headers, **kwargs)
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
            if response.status_code == 401 and not refreshed:
                log.info("salesforce: %s: session expired or invalid (401); asking for a new token", what)
                refreshed = True
                self.authenticate()
                continue
            if response.status_code in ok:
                return response
            hint = {
                401: " (the connected app's run-as user needs API Enabled)",
                403: " (the run-as user lacks a permission this call needs: docs/crm.md)",
            }.get(response.status_code, "")
            raise CrmError(
                f"salesforce: {what}: {method} {path.split('?')[0]} answered {response.status_code}: "
                f"{self.scrub(error_text(response))}{hint}"
            )

    def _token_value(self) -> str:
        return self._token.get_secret_value() if self._token else ""

    def _send(self, what: str, method: str, url: str, endpoint: str, **kwargs: Any) -> httpx.Response:
        """Send with the bounded retries for limits, 5xx and the network; the last answer otherwise."""
        attempt = 0
        while True:
            self.stats.requests += 1
            self.stats.by_endpoint[endpoint] = self.stats.by_endpoint.get(endpoint, 0) + 1
            try:
                response = self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if attempt >= self.max_retries:
                    raise CrmError(
                        f"salesforce: {what}: no answer after {attempt} retries ({type(exc).__name__}); "
                        "check the network and run again (a rerun never duplicates a task)"
                    ) from None
                attempt += 1
                self._wait(what, self._backoff(attempt), f"{type(exc).__name__}", attempt, limited=False)
                continue
            limited = response.status_code in RATE_LIMITED or (
                response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in _error_codes(response)
            )
            if not limited and response.status_code not in TRANSIENT:
                return response
            if attempt >= self.max_retries:
                if limited:
                    raise CrmError(
                        f"salesforce: {what}: still rate limited ({response.status_code}) after {attempt} retries; "
                        "run again later (Setup > Company Information shows the org's API request limit)"
                    )
                return response
            attempt += 1
            wait = retry_after_seconds(response.headers) if limited else None
            why = "Retry-After" if wait is not None else "backoff"
            self._wait(what, wait if wait is not None else self._backoff(attempt), why, attempt, limited=limited)

    def _backoff(self, attempt: int) -> float:
        return min(BACKOFF_SECONDS * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)

    def _wait(self, what: str, seconds: float, why: str, attempt: int, *, limited: bool) -> None:
        if limited:
            self.stats.retries_after_429 += 1
        self.stats.waited_seconds += seconds
        log.warning(
            "salesforce: %s: waiting %.1f s (%s) before retry %d of %d", what, seconds, why, attempt, self.max_retries
        )
        self.sleep(seconds)

    # -- SOQL --------------------------------------------------------------------------------------------------

    def query(self, what: str, soql: str, *, all_rows: bool = False) -> Iterator[dict[str, Any]]:
        """The records a SOQL query selects, following nextRecordsUrl; `all_rows` uses queryAll (deleted and
        archived records too)."""
        resource = "/queryAll" if all_rows else "/query"
        path: str | None = self.data_path(resource)
        params: dict[str, str] | None = {"q": soql}
        while path is not None:
            payload = self.call(what, "GET", path, f"GET {resource}", params=params).json()
            yield from payload.get("records") or []
            path = None if payload.get("done", True) else payload.get("nextRecordsUrl")
            params = None


def soql_quote(value: str) -> str:
    """A SOQL string literal: backslashes and single quotes escaped, as SOQL requires."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def soql_in_lists(values: Iterable[str], *, max_chars: int = 4000, max_values: int = 200) -> Iterator[str]:
    """The values as SOQL IN lists ("'a', 'b'") short enough that each query's URL stays far below the
    16,384 characters Salesforce accepts, whatever the values' lengths."""
    current: list[str] = []
    size = 0
    for value in values:
        quoted = soql_quote(value)
        if current and (size + len(quoted) + 2 > max_chars or len(current) >= max_values):
            yield ", ".join(current)
            current, size = [], 0
        current.append(quoted)
        size += len(quoted) + 2
    if current:
        yield ", ".join(current)
