"""Load generator for the webhook receiver: SendGrid-like signed batches at a paced rate, and a receiver process.

Used by tests/tracking/test_load.py (bounded load and SIGKILL tests) and bench/events/bench_receiver.py.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
_KINDS = ["processed", "delivered", "delivered", "open", "open", "click", "deferred", "bounce", "unsubscribe"]


class Signer:
    """A P-256 key pair standing in for SendGrid's: signs timestamp + body like SendGrid does."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key_b64 = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.private_key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
            TIMESTAMP_HEADER: ts,
            "Content-Type": "application/json",
        }


def fake_event(n: int, rng: random.Random, run_id: str = "run-load") -> dict[str, Any]:
    """One SendGrid-shaped event (about 450 bytes) with a unique sg_event_id."""
    kind = rng.choice(_KINDS)
    send = rng.randrange(1_000_000)
    event: dict[str, Any] = {
        "email": f"user{send}@example.co.jp",
        "timestamp": int(time.time()),
        "event": kind,
        "sg_event_id": f"load-{run_id}-{n:010d}",
        "sg_message_id": f"msg{send:07d}.filterdrecv-5bd8b9f8bf-x7k2q-1-65A1B2C3-{n % 97}.0",
        "smtp-id": f"<msg{send:07d}@ismtpd0001p1nrt1.sendgrid.net>",
        "category": ["kizuna", "renewal_notice"],
        "send_id": f"renewal_notice:{send}:2025-01",
        "run_id": run_id,
        "campaign": "renewal_notice",
        "template": "renewal_notice",
    }
    if kind in ("open", "click"):
        event["useragent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"
        event["ip"] = "203.0.113.7"
        event["sg_machine_open"] = kind == "open" and rng.random() < 0.4
    if kind == "click":
        event["url"] = "https://example.co.jp/pricing?utm_source=kizuna"
        event["url_offset"] = {"index": 0, "type": "html"}
    if kind == "bounce":
        event.update(type=rng.choice(["bounce", "blocked"]), status="5.1.1", reason="550 5.1.1 unknown user")
    return event


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ReceiverProcess:
    """`kizuna events serve` as a real uvicorn process on loopback."""

    def __init__(self, events_dir: Path, public_key_b64: str, port: int | None = None, log: Path | None = None) -> None:
        self.events_dir = events_dir
        self.public_key_b64 = public_key_b64
        self.port = port or free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        env = {
            **os.environ,
            "KIZUNA_EVENTS_DIR": str(self.events_dir),
            "KIZUNA_SENDGRID_WEBHOOK_PUBLIC_KEY": self.public_key_b64,
        }
        code = "from kizuna.cli.events import app; app()"
        args = [sys.executable, "-c", code, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"receiver exited with {self.proc.returncode} (log: {self.log})")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"receiver did not answer /healthz within {timeout} s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


@dataclass
class LoadReport:
    seconds: float = 0.0
    batches_acked: int = 0
    events_acked: int = 0
    attempts: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    acked_ids: set[str] = field(default_factory=set)

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def summary(self) -> str:
        return (
            f"{self.events_acked:,} events in {self.batches_acked:,} batches acknowledged in {self.seconds:.1f} s "
            f"({self.events_acked / self.seconds:,.0f} events/s); attempts {self.attempts:,}, answers "
            f"{dict(self.statuses)}; latency p50 {self.percentile(50) * 1000:.1f} ms, "
            f"p99 {self.percentile(99) * 1000:.1f} ms"
        )


def _batches(rng: random.Random, sizes: tuple[int, int], run_id: str) -> Iterator[list[dict[str, Any]]]:
    counter = itertools.count()
    while True:
        yield [fake_event(next(counter), rng, run_id) for _ in range(rng.randint(*sizes))]


def drive(
    url: str,
    signer: Signer,
    seconds: float,
    rate: float | None,
    *,
    batch_sizes: tuple[int, int] = (50, 500),
    threads: int = 4,
    run_id: str = "run-load",
    seed: int = 7,
    during: tuple[float, Any] | None = None,
) -> LoadReport:
    """Post batches for ``seconds`` at ``rate`` events/s (None: as fast as possible) and retry every refused or
    failed batch until it is acknowledged, as SendGrid does. ``during=(t, fn)`` calls fn() once, t s in.

    Returns once every batch generated in the window has been acknowledged (or 60 s after the window).
    """
    report = LoadReport()
    lock = threading.Lock()
    source = _batches(random.Random(seed), batch_sizes, run_id)
    start = time.monotonic()
    planned = {"events": 0}
    stop_at = start + seconds
    give_up_at = stop_at + 60

    def next_batch() -> tuple[list[dict[str, Any]], float] | None:
        with lock:
            now = time.monotonic()
            if now >= stop_at:
                return None
            batch = next(source)
            due = start + planned["events"] / rate if rate else now
            planned["events"] += len(batch)
            return batch, due

    def worker() -> None:
        with httpx.Client(timeout=10) as client:
            while (item := next_batch()) is not None:
                batch, due = item
                time.sleep(max(0.0, due - time.monotonic()))
                body = json.dumps(batch, separators=(",", ":")).encode() + b"\r\n"
                while time.monotonic() < give_up_at:
                    t0 = time.monotonic()
                    try:
                        status = str(
                            client.post(
                                url + "/sendgrid/events", content=body, headers=signer.headers(body)
                            ).status_code
                        )
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    with lock:
                        report.attempts += 1
                        report.statuses[status] += 1
                        if status.startswith("2"):
                            report.latencies.append(time.monotonic() - t0)
                            report.batches_acked += 1
                            report.events_acked += len(batch)
                            report.acked_ids.update(e["sg_event_id"] for e in batch)
                    if status.startswith("2"):
                        break
                    time.sleep(0.1)  # SendGrid backs off far longer; the test needs the retries to land

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    if during is not None:
        at, action = during
        time.sleep(max(0.0, start + at - time.monotonic()))
        action()
    for w in workers:
        w.join()
    report.seconds = time.monotonic() - start
    return report


def stored_event_ids(events_dir: Path) -> tuple[set[str], int]:
    """sg_event_ids of every complete line in the store, and the number of incomplete trailing lines."""
    ids: set[str] = set()
    partial = 0
    for path in sorted(events_dir.glob("*.jsonl")):
        data = path.read_bytes()
        lines = data.split(b"\n")
        if lines and lines[-1]:
            partial += 1
        for line in lines[:-1]:
            ids.add(json.loads(line)["event"]["sg_event_id"])
    return ids, partial
