"""Fixtures for the webhook receiver, the event store and the loader: keys, signed requests, settings."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.events.loadgen import Signer
from kizuna.core.settings import Settings
from kizuna.tracking.store import EventStore


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer()


@pytest.fixture
def tracking_settings(tmp_path: Path, signer: Signer) -> Settings:
    return Settings(
        events_dir=tmp_path / "events",
        warehouse=tmp_path / "warehouse.duckdb",
        var_dir=tmp_path / "var",
        sendgrid_webhook_public_key=signer.public_key_b64,
        events_load_wait_seconds=5,
    )


def event(event_id: str, kind: str = "delivered", **fields: Any) -> dict[str, Any]:
    """A SendGrid event with sensible defaults; fields override."""
    return {
        "email": "taro@example.co.jp",
        "timestamp": 1_735_689_600,
        "event": kind,
        "sg_event_id": event_id,
        "sg_message_id": f"msg-{event_id}.filterdrecv-1",
        "send_id": "renewal_notice:c1:2025-01",
        "run_id": "run-1",
        "campaign": "renewal_notice",
        "template": "renewal_notice",
        **fields,
    }


def store_events(settings: Settings, *batches: list[dict[str, Any]]) -> None:
    """Append each batch to the settings' event store, as the webhook receiver does (one segment per store)."""
    store = EventStore(settings.events_dir, settings.events_segment_max_bytes)
    store.open()
    try:
        for batch in batches:
            store.append(batch)
    finally:
        store.close()


def body_of(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode() + b"\r\n"


def stored_lines(events_dir: Path) -> list[bytes]:
    return [line for p in sorted(events_dir.glob("*.jsonl")) for line in p.read_bytes().splitlines()]


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make a directory unwritable, even for root (immutable attribute); skip where neither works."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr: cannot make a directory read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
