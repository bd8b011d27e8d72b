"""Delivery speed: campaign messages through the SendGrid backend and the send ledger to local stand-ins.

Two stand-ins (tests/standins/sendgrid_server.py) run in their own processes on 127.0.0.1: one answers at
once, one adds --delay seconds (default 50 ms) to every answer, as a real API's latency would. Every case
runs against its stand-in in turn, round after round, and keeps its best round, so the instant and the
slow case are measured side by side under the same load. Messages are rendered once beforehand (rendering
has its own benchmark); what is timed is kizuna.campaigns.run.deliver: the ledger writes ('sending' and
the outcomes, one UPDATE each per batch, in a DuckDB file) plus one request per message with at most
``in flight`` requests at a time. Besides messages/s it reports the CPU spent per message by this process
(client, ledger) and by the stand-in, which says how far 2 shared cores can go.

Run: python bench/delivery/bench_delivery.py [--n 5000] [--rounds 2] [--delay 0.05]
     [--cases official:16:0,official:128:slow,pooled:16:0,pooled:128:slow]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from kizuna.campaigns import ledger
from kizuna.campaigns.run import deliver
from kizuna.core.settings import PROJECT_DIR
from kizuna.email.message import OutgoingMessage, build_message
from kizuna.email.render import Sender, TemplateRenderer
from kizuna.email.sendgrid import SendGridBackend

SENDER = Sender("株式会社キズナ", "cs@kizuna.example.jp", "〒100-0005 東京都千代田区丸の内1-1-1", "03-0000-0000")
DEFAULT_CASES = "official:16:0,official:128:slow,pooled:16:0,pooled:128:slow"


@dataclass(frozen=True)
class Case:
    transport: str
    concurrency: int
    slow: bool  # against the stand-in that adds --delay to every answer

    @classmethod
    def parse(cls, text: str) -> Case:
        transport, concurrency, answers = text.split(":")
        if transport not in ("official", "pooled") or answers not in ("0", "slow"):
            raise ValueError(f"case {text!r}: use official|pooled:<in flight>:0|slow")
        return cls(transport, int(concurrency), answers == "slow")


@dataclass
class Result:
    rate: float = 0.0  # messages/s, best round
    client_ms: float = 0.0  # CPU ms per message of this process, in the best round
    standin_ms: float | None = None  # CPU ms per message of the stand-in process, in the best round
    outcomes: str = ""


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


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of another process (Linux /proc), None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_standin(delay: float) -> tuple[subprocess.Popen[str], str]:
    standin = subprocess.Popen(
        [sys.executable, "-m", "tests.standins.sendgrid_server", "--delay", str(delay)],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    host = standin.stdout.readline().strip() if standin.stdout else ""
    if not host:
        raise RuntimeError("the SendGrid stand-in did not start")
    return standin, host


def run_case(case: Case, host: str, standin_pid: int, batch: list[OutgoingMessage], batch_size: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="kizuna-bench-delivery-") as tmp:
        con = claimed_ledger(Path(tmp) / "bench.duckdb", [m.message_key for m in batch])
        backend = SendGridBackend("SG.bench", host, timeout=10, transport=case.transport)
        standin_cpu, cpu, started = cpu_seconds(standin_pid), time.process_time(), time.perf_counter()
        totals = deliver(
            con,
            backend,
            [{} for _ in batch],
            lambda row: batch[0],
            rendered=batch,
            concurrency=case.concurrency,
            batch_size=batch_size,
        )
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        standin_after = cpu_seconds(standin_pid)
        backend.close()
        con.close()
    n = len(batch)
    return Result(
        rate=n / elapsed,
        client_ms=1000 * cpu / n,
        standin_ms=None if standin_cpu is None or standin_after is None else 1000 * (standin_after - standin_cpu) / n,
        outcomes=", ".join(f"{count:,} {state}" for state, count in sorted(totals.items())),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds the slow stand-in adds to every answer")
    parser.add_argument("--cases", default=DEFAULT_CASES, help="transport:in flight:0|slow, comma-separated")
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    cases = [Case.parse(c) for c in args.cases.split(",")]
    batch = messages(args.n)
    standins = {slow: start_standin(args.delay if slow else 0.0) for slow in sorted({c.slow for c in cases})}
    try:
        best = {case: Result() for case in cases}
        for _ in range(args.rounds):
            for case in cases:
                standin, host = standins[case.slow]
                result = run_case(case, host, standin.pid, batch, args.batch_size)
                if result.rate > best[case].rate:
                    best[case] = result
    finally:
        for standin, _ in standins.values():
            standin.terminate()
            standin.wait(timeout=10)
    print(f"{args.n:,} messages per case, best of {args.rounds} rounds, batches of {args.batch_size}")
    print("load average (1, 5, 15 min) after the run: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(
        f"{'transport':<9} {'in flight':>9} {'answers':>8} {'messages/s':>10} {'client CPU':>10} {'stand-in CPU':>12}"
    )
    for case, result in best.items():
        answers = f"+{args.delay * 1000:.0f} ms" if case.slow else "at once"
        standin_ms = "?" if result.standin_ms is None else f"{result.standin_ms:.2f} ms"
        print(
            f"{case.transport:<9} {case.concurrency:>9} {answers:>8} {result.rate:>10,.0f} "
            f"{result.client_ms:>7.2f} ms {standin_ms:>12}   {result.outcomes}"
        )


if __name__ == "__main__":
    main()
