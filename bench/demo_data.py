"""Times the demo data generator at 10k, 100k and 1M customers; files go to a temporary directory."""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

from kizuna.demo.generate import generate_demo_data

AS_OF = date(2026, 2, 15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--encoding", default="utf-8")
    args = parser.parse_args()
    print(f"{'customers':>10} {'rows':>12} {'MB':>8} {'seconds':>8}  rows per file")
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="kizuna-demo-bench-") as tmp:
            started = time.perf_counter()
            written = generate_demo_data(Path(tmp), size, args.seed, AS_OF, encoding=args.encoding)
            seconds = time.perf_counter() - started
            megabytes = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
        detail = ", ".join(f"{name.split('.')[0]} {rows:,}" for name, rows in written.items())
        print(f"{size:>10,} {sum(written.values()):>12,} {megabytes:>8,.0f} {seconds:>8.1f}  {detail}", flush=True)


if __name__ == "__main__":
    main()
