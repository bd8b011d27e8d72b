"""Events accepted per second by one receiver process (signature checked, every batch fsynced), on loopback.

python -m bench.events.bench_receiver [--seconds 20] [--batch 500 100 1000] [--threads 8]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.events.loadgen import ReceiverProcess, Signer, drive, stored_event_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--batch", nargs="*", type=int, default=[100, 500, 1000], help="Events per POST.")
    parser.add_argument("--threads", type=int, default=8, help="Concurrent senders.")
    args = parser.parse_args()
    signer = Signer()
    print(f"{'batch':>6} {'events/s':>10} {'posts/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'MB/s':>6}  lost")
    for size in args.batch:
        with tempfile.TemporaryDirectory(prefix="kizuna-events-bench-") as tmp:
            receiver = ReceiverProcess(Path(tmp) / "events", signer.public_key_b64)
            receiver.start()
            try:
                report = drive(receiver.url, signer, args.seconds, None, batch_sizes=(size, size), threads=args.threads)
            finally:
                receiver.stop()
            stored, _ = stored_event_ids(Path(tmp) / "events")
            megabytes = sum(p.stat().st_size for p in (Path(tmp) / "events").glob("*.jsonl")) / 1e6
        print(
            f"{size:>6} {report.events_acked / report.seconds:>10,.0f} {report.batches_acked / report.seconds:>8,.1f} "
            f"{report.percentile(50) * 1000:>7.1f} {report.percentile(99) * 1000:>7.1f} "
            f"{megabytes / report.seconds:>6.1f}  {len(report.acked_ids - stored)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
