"""The webhook receiver: an ASGI app that checks SendGrid's signature and stores each batch before answering."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kizuna.core.settings import Settings
from kizuna.tracking.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureRejected,
    WebhookKeyError,
    WebhookVerifier,
)
from kizuna.tracking.store import EventStore, StoreUnavailableError

log = logging.getLogger(__name__)
EVENTS_PATH = "/sendgrid/events"


class NotAnEventBatchError(ValueError):
    """The body is not a JSON array of objects."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_batch(body: bytes) -> list[dict[str, Any]]:
    """SendGrid's body: a JSON array of event objects (UTF-8). Anything else raises NotAnEventBatchError."""
    try:
        doc = json.loads(body, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise NotAnEventBatchError(f"body is not JSON: {exc}") from exc
    if not isinstance(doc, list):
        raise NotAnEventBatchError(f"body is a JSON {type(doc).__name__}, not an array of events")
    if not all(isinstance(e, dict) for e in doc):
        raise NotAnEventBatchError("every element of the array must be an event object")
    return doc


def _reject(status: int, reason: str, request: Request) -> JSONResponse:
    client = request.client.host if request.client else "?"
    log.warning("webhook refused %s from %s: %s", status, client, reason)
    # 413 may answer before the body was read: close the connection rather than read the rest.
    headers = {"Connection": "close"} if status == 413 else None
    return JSONResponse({"error": reason}, status_code=status, headers=headers)


def make_verifier(settings: Settings) -> WebhookVerifier:
    if not settings.sendgrid_webhook_public_key:
        raise WebhookKeyError(
            "KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY is not set: the receiver refuses to run unsigned "
            "(enable Signed Event Webhook in SendGrid and copy its verification key; see docs/tracking.md)"
        )
    return WebhookVerifier.from_base64(
        settings.sendgrid_webhook_public_key, settings.webhook_max_age_seconds, settings.webhook_clock_skew_seconds
    )


def create_app(
    settings: Settings, *, verifier: WebhookVerifier | None = None, store: EventStore | None = None
) -> Starlette:
    """The receiver. Fails at once if the public key setting is missing or malformed."""
    verifier = verifier or make_verifier(settings)
    store = store or EventStore(settings.events_dir, settings.events_segment_max_bytes)
    max_bytes = settings.webhook_max_body_bytes
    state: dict[str, str | None] = {"store_error": None}

    async def receive_events(request: Request) -> JSONResponse:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return _reject(400, "Content-Length is not a number", request)
            if int(length) > max_bytes:
                return _reject(413, f"body of {length} bytes is over the {max_bytes}-byte limit", request)
        signature = request.headers.get(SIGNATURE_HEADER)
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        try:  # cheap checks first, before reading a body we would refuse anyway
            verifier.check_timestamp(timestamp)
            if not signature:
                raise SignatureRejected(f"missing {SIGNATURE_HEADER}")
        except SignatureRejected as exc:
            return _reject(403, str(exc), request)

        body = bytearray()
        async for chunk in request.stream():  # counted as it arrives: Content-Length may lie or be absent
            body += chunk
            if len(body) > max_bytes:
                return _reject(413, f"body is over the {max_bytes}-byte limit", request)
        raw = bytes(body)
        try:
            verifier.verify(raw, signature, timestamp)  # the raw bytes: never re-serialised JSON
        except SignatureRejected as exc:
            return _reject(403, str(exc), request)
        try:
            events = parse_batch(raw)
        except NotAnEventBatchError as exc:
            return _reject(400, str(exc), request)

        try:
            await anyio.to_thread.run_sync(store.append, events)
        except StoreUnavailableError as exc:
            state["store_error"] = str(exc)
            log.error("webhook answered 503, SendGrid will retry: %s", exc)
            return JSONResponse({"error": "events could not be stored; retry later"}, status_code=503)
        state["store_error"] = None
        return JSONResponse({"stored": len(events)})

    async def healthz(request: Request) -> JSONResponse:
        if state["store_error"]:
            return JSONResponse({"status": "failing", "store": state["store_error"]}, status_code=503)
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            store.open()  # StoreLockedError (a second receiver on the same folder) stops start-up
        except StoreUnavailableError as exc:
            # Keep serving: every post answers 503 (SendGrid retries) until the folder is writable again.
            state["store_error"] = str(exc)
            log.error("event store unavailable at start-up: %s", exc)
        try:
            yield
        finally:
            store.close()

    routes = [Route(EVENTS_PATH, receive_events, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan)


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory kizuna.tracking.app:app_from_env``: settings from KIZUNA_*."""
    return create_app(Settings())
