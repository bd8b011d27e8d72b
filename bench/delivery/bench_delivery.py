"""Delivery speed: campaign messages through the SendGrid backend and the send ledger to a local stand-in.

The stand-in (tests/standins/sendgrid_server.py) runs in its own process, answering at once or after --delay
seconds. Messages are rendered once beforehand (rendering has its own benchmark); what is timed is
kizuna.campaigns.run.deliver: the ledger writes (sending / outcome, one UPDATE per batch) plus the requests.

Run: python bench/delivery/bench_delivery.py [--n 5000] [--delay 0.05] [--transport official|pooled]
     [--concurrency 32]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from kizuna.campaigns import ledger
from kizuna.campaigns.run import deliver
from kizuna.email.message import OutgoingMessage, build_message
from kizuna.email.render import Sender, TemplateRenderer
from kizuna.email.sendgrid import SendGridBackend
from kizuna.settings import PROJECT_DIR

SENDER = Sender("株式会社キズナ", "cs@kizuna.example.jp", "〒100-0005 東京都千代田区丸の内1-1-1", "03-0000-0000")


def messages(n: int) -> list[OutgoingMessage]:
    renderer = TemplateRenderer(PROJECT_DIR / "templates", SENDER, "https://kizuna.example.jp/u?c={contact_token}")
    email = renderer.render_sample("renewal_reminder", "ja")
    return [
        build_message(email, f"c{i:06d}@kunde.example.jp", f"山田 {i}", f"key{i:08d}", custom_args={"run_id": "bench"})
        for i in range(n)
    ]


def claimed_ledger(path: Path, keys: list[str]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    ledger.ensure_ledger(con)
    con.execute(
        "INSERT INTO ops.send_ledger (message_key, campaign, contact_id, email, occasion, run_id, state, claimed_at) "
        "SELECT k, 'bench', k, k, 'once', 'bench', 'pending', now() FROM unnest(?::VARCHAR[]) t(k)",
        [keys],
    )
    return con


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--transport", choices=["official", "pooled"], default="official")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    standin = subprocess.Popen(
        [sys.executable, "-m", "tests.standins.sendgrid_server", "--delay", str(args.delay)],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        host = standin.stdout.readline().strip() if standin.stdout else ""
        batch = messages(args.n)
        with tempfile.TemporaryDirectory() as tmp:
            con = claimed_ledger(Path(tmp) / "bench.duckdb", [m.message_key for m in batch])
            backend = SendGridBackend("SG.bench", host, timeout=10, transport=args.transport)
            started = time.perf_counter()
            totals = deliver(
                con,
                backend,
                [{} for _ in batch],
                lambda row: batch[0],
                rendered=batch,
                concurrency=args.concurrency,
                batch_size=args.batch_size,
            )
            elapsed = time.perf_counter() - started
            backend.close()
            con.close()
        print(
            f"{args.transport}, {args.concurrency} in flight, delay {args.delay * 1000:.0f} ms: "
            f"{args.n / elapsed:,.0f} messages/s ({args.n:,} in {elapsed:.2f} s) {totals}"
        )
    finally:
        standin.terminate()
        standin.wait(timeout=10)


if __name__ == "__main__":
    main()
