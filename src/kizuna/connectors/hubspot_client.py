"""HubSpot over HTTP: the official client's requests, retries that honour HubSpot's limits, errors without secrets.

The official client (hubspot-api-client) builds every request, authenticates it and retries it through
urllib3's `Retry`, which we configure: 429, 5xx, timeouts and dropped connections are retried up to
settings.connector_max_retries times with exponential backoff; a 429 waits for Retry-After, or else for what
HubSpot's X-HubSpot-RateLimit-* headers say. Answers are read as JSON (`_preload_content=False`): the client's
generated models cost ~20 ms per 100-record page, forty times the JSON parse, which is a third of a
100,000-record pull. Errors become ConnectorError naming the request and the status; the client's own exception
text (status, headers, body) is never passed on, and nothing is chained to it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

import urllib3
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from kizuna.connectors.base import ConnectorError

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_WAIT_SECONDS = 60.0  # the longest single wait a Retry-After or a rate-limit header can impose
BACKOFF_FACTOR = 0.5  # retries after 0, 1, 2, 4, 8 ... seconds (urllib3 doubles per consecutive failure)
BACKOFF_MAX = 30.0
# HubSpot's rate-limit headers (docs/sources.md); the search endpoints do not send them.
REMAINING = "X-HubSpot-RateLimit-Remaining"
INTERVAL_MS = "X-HubSpot-RateLimit-Interval-Milliseconds"
SECONDLY_REMAINING = "X-HubSpot-RateLimit-Secondly-Remaining"
DAILY_REMAINING = "X-HubSpot-RateLimit-Daily-Remaining"
_TOKEN_PATTERN = re.compile(r"\bpat-[a-z0-9]+-[0-9a-f-]{8,}", re.IGNORECASE)  # private app tokens


def rate_limit_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds HubSpot's rate-limit headers ask us to wait before the next request, or None."""
    if headers.get(SECONDLY_REMAINING) == "0":
        return 1.0
    if headers.get(REMAINING) == "0":
        try:
            interval = int(headers.get(INTERVAL_MS) or "10000") / 1000
        except ValueError:
            interval = 10.0
        return min(max(interval, 0.0), MAX_WAIT_SECONDS)
    return None


class HubSpotRetry(Retry):
    """urllib3's Retry, plus HubSpot's rate-limit headers when a 429 carries no Retry-After.

    A 429 that says the daily limit is spent is not retried: nothing changes before the day rolls over.
    """

    def get_retry_after(self, response: Any) -> float | None:
        seconds = super().get_retry_after(response)
        if seconds is not None:
            return min(seconds, MAX_WAIT_SECONDS)
        if response.status == 429:
            return rate_limit_wait(response.headers)
        return None

    def sleep_for_retry(self, response: BaseHTTPResponse) -> bool:
        # urllib3 treats "Retry-After: 0" as no header and backs off instead; HubSpot means "now".
        seconds = self.get_retry_after(response)
        if seconds is None:
            return False
        if seconds > 0:
            time.sleep(seconds)
        return True

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if response is not None and response.status == 429 and response.headers.get(DAILY_REMAINING) == "0":
            raise MaxRetryError(_pool, url or "", reason=None)  # type: ignore[arg-type]  # handed back as the 429
        return super().increment(method, url, response, error, _pool, _stacktrace)


def make_retry(max_retries: int, *, repeatable: bool = True) -> HubSpotRetry:
    """The retry of every call; `repeatable=False` (creates) retries only what HubSpot surely did not do: a
    refused connection and a 429. A create whose answer was lost is not sent again (it may have been done)."""
    return HubSpotRetry(
        total=max_retries,
        connect=max_retries,
        read=max_retries if repeatable else 0,
        other=None if repeatable else 0,
        status=max_retries,
        backoff_factor=BACKOFF_FACTOR,
        backoff_max=BACKOFF_MAX,
        status_forcelist=RETRY_STATUSES if repeatable else (429,),
        # Searches and batch reads are POSTs that change nothing: safe to repeat.
        allowed_methods=frozenset({"GET", "POST"}),
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer comes back, so the error can name its status
    )


def scrub(text: str, secret: str) -> str:
    """`text` without the secret (or anything shaped like a HubSpot token), shortened for a message."""
    if secret:
        text = text.replace(secret, "***")
    text = _TOKEN_PATTERN.sub("***", text)
    return text if len(text) <= 200 else text[:200] + "…"


class HubSpotApi:
    """The few HubSpot CRM v3/v4 calls the connector makes, each returning the answer's JSON."""

    def __init__(self, token: str, base_url: str, max_retries: int, timeout_seconds: float) -> None:
        import hubspot

        self._token = token
        self.max_retries = max_retries
        self._timeout = (timeout_seconds, timeout_seconds)  # connect, read
        client = hubspot.Client.create(access_token=token, retry=make_retry(max_retries), host=base_url.rstrip("/"))
        # Each attribute access builds a new API client with its own connection pool: take each once.
        self._search = client.crm.objects.search_api
        self._basic = client.crm.objects.basic_api
        self._batch = client.crm.objects.batch_api
        self._owners = client.crm.owners.owners_api
        self._associations = client.crm.associations.v4.batch_api
        self._pipelines = client.crm.pipelines.pipelines_api
        self._properties = client.crm.properties.core_api
        self._groups = client.crm.properties.groups_api
        creates = hubspot.Client.create(
            access_token=token, retry=make_retry(max_retries, repeatable=False), host=base_url.rstrip("/")
        )
        self._creates = creates.crm.objects.batch_api
        self.requests = 0
        self.retries_after_429 = 0
        self.by_endpoint: dict[str, int] = {}

    def __repr__(self) -> str:  # never the token
        return f"HubSpotApi(max_retries={self.max_retries})"

    def search(self, object_type: str, request: dict[str, Any]) -> dict[str, Any]:
        """POST /crm/v3/objects/{type}/search with filterGroups, sorts, properties, limit, after."""
        from hubspot.crm.objects import Filter, FilterGroup, PublicObjectSearchRequest

        body = PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(filters=[Filter(**f) for f in group]) for group in request.get("filter_groups", [])
            ],
            sorts=request.get("sorts"),
            properties=request.get("properties"),
            limit=request.get("limit"),
            after=request.get("after"),
        )
        return self._call(f"search of {object_type}", self._search.do_search, object_type, body)

    def list_page(
        self, object_type: str, *, archived: bool, properties: list[str], after: str | None
    ) -> dict[str, Any]:
        """GET /crm/v3/objects/{type}?archived=...: one page of live or archived records."""
        return self._call(
            f"{'archived ' if archived else ''}{object_type} list",
            self._basic.get_page,
            object_type,
            limit=100,
            after=after,
            properties=properties,
            archived=archived,
        )

    def batch_read(self, object_type: str, ids: list[str], properties: list[str]) -> dict[str, Any]:
        """POST /crm/v3/objects/{type}/batch/read for up to 100 ids."""
        from hubspot.crm.objects import BatchReadInputSimplePublicObjectId, SimplePublicObjectId

        body = BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in ids], properties=properties, properties_with_history=[]
        )
        return self._call(f"batch read of {object_type}", self._batch.read, object_type, body, archived=False)

    def owners_page(self, *, archived: bool, after: str | None) -> dict[str, Any]:
        """GET /crm/v3/owners/: one page of active (or deactivated) users."""
        return self._call("owners list", self._owners.get_page, limit=100, after=after, archived=archived)

    def company_associations(self, object_type: str, ids: list[str]) -> dict[str, Any]:
        """POST /crm/v4/associations/{type}/companies/batch/read for up to 1,000 ids."""
        from hubspot.crm.associations.v4 import (
            BatchInputPublicFetchAssociationsBatchRequest,
            PublicFetchAssociationsBatchRequest,
        )

        body = BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in ids]
        )
        return self._call(
            f"{object_type} to companies associations", self._associations.get_page, object_type, "companies", body
        )

    def pipelines(self, object_type: str) -> dict[str, Any]:
        """GET /crm/v3/pipelines/{type}: pipelines with their stages' labels and metadata."""
        return self._call(f"{object_type} pipelines", self._pipelines.get_all, object_type)

    # -- writes (kizuna.crm's HubSpot target, docs/crm.md) ----------------------------------------------------

    def batch_update(self, object_type: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """POST /crm/v3/objects/{type}/batch/update: up to 100 {"id", "properties"}; safe to repeat."""
        return self._call(f"batch update of {object_type}", self._batch.update, object_type, {"inputs": inputs})

    def batch_create(self, object_type: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """POST /crm/v3/objects/{type}/batch/create: up to 100 {"properties", "associations"}; never repeated
        after a lost answer (the caller finds what was created by its key)."""
        return self._call(f"batch create of {object_type}", self._creates.create, object_type, {"inputs": inputs})

    def properties(self, object_type: str) -> dict[str, Any]:
        """GET /crm/v3/properties/{type}: every property of the object type."""
        return self._call(f"{object_type} properties", self._properties.get_all, object_type, archived=False)

    def create_property(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /crm/v3/properties/{type}."""
        return self._call(f"creation of {object_type} property {body.get('name')}", self._properties.create,
                          object_type, body)  # fmt: skip

    def property_groups(self, object_type: str) -> dict[str, Any]:
        """GET /crm/v3/properties/{type}/groups."""
        return self._call(f"{object_type} property groups", self._groups.get_all, object_type)

    def create_property_group(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /crm/v3/properties/{type}/groups."""
        return self._call(f"creation of {object_type} property group", self._groups.create, object_type, body)

    def _call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        failure: str | None = None
        data = b""
        headers: Mapping[str, str] = {}
        self.requests += 1
        self.by_endpoint[what] = self.by_endpoint.get(what, 0) + 1
        try:
            response = method(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
            data = response.data
            headers = response.headers
            history = getattr(getattr(response, "retries", None), "history", None) or ()
            self.retries_after_429 += sum(1 for h in history if getattr(h, "status", None) == 429)
            response.release_conn()
        except Exception as exc:
            # Each generated package (objects, owners, associations, pipelines) has its own ApiException
            # class; they share the shape: status, reason, headers, body.
            if isinstance(getattr(exc, "status", None), int) and hasattr(exc, "body"):
                failure = self._describe(exc)
            elif isinstance(exc, urllib3.exceptions.HTTPError | OSError):
                reason = getattr(exc, "reason", None) or exc
                failure = f"no answer after {self.max_retries} retries ({type(reason).__name__})"
            else:
                raise
        if failure is not None:
            # Raised outside the except block: the client's exception (with headers and body) is not chained.
            raise ConnectorError(f"hubspot {what}: {failure}")
        self._pace(headers)
        try:
            answer = json.loads(data) if data else {}
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ConnectorError(f"hubspot {what}: the answer was not a JSON object")
        return answer

    def _describe(self, exc: Any) -> str:
        status = int(getattr(exc, "status", 0) or 0)
        headers = getattr(exc, "headers", None) or {}
        detail = ""
        try:
            body = json.loads(exc.body or b"{}")
            if isinstance(body, dict):
                detail = " ".join(str(body.get(k)) for k in ("category", "message") if body.get(k))
        except (TypeError, ValueError):
            detail = ""
        detail = f" {scrub(detail, self._token)}" if detail else ""
        if status == 0:
            return "the connection failed (TLS); check KIZUNA_HUBSPOT_BASE_URL and the certificates"
        if status == 401:
            return f"HubSpot refused the token (401{detail}); check KIZUNA_HUBSPOT_TOKEN or its Secret block"
        if status == 403:
            return f"the token lacks a scope for this (403{detail}); docs/sources.md lists the scopes"
        if status == 429 and headers.get(DAILY_REMAINING) == "0":
            return "HubSpot's daily API limit is spent (429); the next run after it resets will catch up"
        if status in RETRY_STATUSES:
            return f"HubSpot answered {status} after {self.max_retries} retries{detail and ':' + detail}"
        return f"HubSpot answered {status}{detail and ':' + detail}"

    def _pace(self, headers: Mapping[str, str]) -> None:
        """Wait before the next request when this answer says the burst allowance is spent."""
        wait = rate_limit_wait(headers)
        if wait:
            log.info("hubspot: rate limit reached, waiting %.1f s", wait)
            time.sleep(wait)
