"""Events loaded into the warehouse per second: a store of N events, loaded into an empty warehouse, then N more.

python -m bench.events.bench_loader [--events 500000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from bench.events.loadgen import fake_event
from kizuna.core.settings import Settings
from kizuna.tracking.loader import load_events
from kizuna.tracking.store import EventStore


def fill(store_dir: Path, events: int, run_id: str, batch: int = 500) -> float:
    rng = random.Random(run_id)
    store = EventStore(store_dir)
    store.open()
    started = time.perf_counter()
    try:
        for first in range(0, events, batch):
            store.append([fake_event(n, rng, run_id) for n in range(first, min(events, first + batch))])
    finally:
        store.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000)
    args = parser.parse_args()
    print(f"{'load':>14} {'events':>10} {'store MB':>9} {'seconds':>8} {'events/s':>9} {'transactions':>12}")
    with tempfile.TemporaryDirectory(prefix="kizuna-loader-bench-") as tmp:
        settings = Settings(events_dir=Path(tmp) / "events", warehouse=Path(tmp) / "warehouse.duckdb")
        for label, run_id in [("empty table", "first"), ("on top of it", "second")]:
            fill(settings.events_dir, args.events, run_id)
            megabytes = sum(p.stat().st_size for p in settings.events_dir.glob("*.jsonl")) / 1e6
            result = load_events(settings, wait_seconds=0)
            print(
                f"{label:>14} {result.inserted:>10,} {megabytes:>9,.0f} {result.seconds:>8.1f} "
                f"{result.inserted / result.seconds:>9,.0f} {result.transactions:>12}",
                flush=True,
            )


if __name__ == "__main__":
    main()
