"""Benchmark: a full pull of Stripe subscriptions (100 per page) by the connector, against two references.

    python -m bench.connectors.bench_stripe [--subscriptions 10000] [--rounds 2] [--workdir /tmp/kizuna-bench-stripe]

The Stripe stand-in of the tests (tests/standins/stripe_api.py) runs in its own process on 127.0.0.1, seeded
with one subscription (and one customer, one invoice) per unit. Each round times, side by side:

- connector: `kizuna ingest` with subscriptions routed to Stripe (stage_sources: the official client's
  `raw_request` pages, product look-ups, MRR mapping, periods, the contract CSV, the parser, raw_incoming);
- typed: the same pages through the client's typed list (`client.v1.subscriptions.list(...).auto_paging_iter()`),
  objects built and nothing else: what the connector would spend had it used the typed objects;
- floor: a bare requests.get loop over the same pages, JSON decoded and nothing else.

The best round of each is reported, with the ratios and the load average; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import requests
import stripe
from pydantic import SecretStr

from kizuna.core.runtime import quiet_third_parties

quiet_third_parties()

from bench.harness.standin import start_standin  # noqa: E402
from kizuna.connectors.stripe import SUBSCRIPTION_EXPAND  # noqa: E402
from kizuna.core.settings import Settings  # noqa: E402
from kizuna.core.warehouse import connect  # noqa: E402
from kizuna.sources.ingest import stage_sources  # noqa: E402

KEY = "sk_test_kizunaStandinKey0123456789"  # the stand-in's key (tests/standins/stripe_api.py)


def connector_round(work: Path, url: str) -> tuple[float, int]:
    shutil.rmtree(work, ignore_errors=True)
    src = work / "src"
    src.mkdir(parents=True)
    (src / "customers.csv").write_text("customer_id,name\nC000000,株式会社ベンチ000000\n", encoding="utf-8")
    settings = Settings(
        source_dir=src,
        warehouse=work / "warehouse.duckdb",
        var_dir=work / "var",
        table_sources="subscriptions=stripe",
        stripe_api_key=SecretStr(KEY),
        stripe_api_base=url,
    )
    started = time.perf_counter()
    stage_sources(settings)
    seconds = time.perf_counter() - started
    with connect(settings.warehouse, read_only=True) as con:
        row = con.execute("SELECT count(*) FROM raw_incoming.subscriptions").fetchone()
    return seconds, int(row[0]) if row else 0


def typed_round(url: str) -> tuple[float, int]:
    client = stripe.StripeClient(KEY, base_addresses={"api": url})
    started = time.perf_counter()
    pages = client.v1.subscriptions.list(params={"status": "all", "limit": 100, "expand": SUBSCRIPTION_EXPAND})
    count = sum(1 for _ in pages.auto_paging_iter())
    return time.perf_counter() - started, count


def floor_round(url: str) -> tuple[float, int]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {KEY}"
    expand = {f"expand[{n}]": path for n, path in enumerate(SUBSCRIPTION_EXPAND)}
    started = time.perf_counter()
    after: str | None = None
    count = 0
    while True:
        params = {"status": "all", "limit": "100", **expand, **({"starting_after": after} if after else {})}
        answer = session.get(f"{url}/v1/subscriptions", params=params, timeout=30).json()
        count += len(answer["data"])
        if not answer["has_more"]:
            return time.perf_counter() - started, count
        after = answer["data"][-1]["id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kizuna-bench-stripe"))
    args = parser.parse_args()
    started = time.perf_counter()
    process, url = start_standin("stripe_api", "--subscriptions", args.subscriptions)
    print(
        f"stand-in with {args.subscriptions:,} subscriptions at {url} (seeded in {time.perf_counter() - started:.1f} s)"
    )
    best: dict[str, float] = {}
    try:
        for n in range(1, args.rounds + 1):
            results = {
                "connector": connector_round(args.workdir, url),
                "typed": typed_round(url),
                "floor": floor_round(url),
            }
            for name, (seconds, rows) in results.items():
                assert rows == args.subscriptions, f"{name}: {rows:,} of {args.subscriptions:,} subscriptions"
                best[name] = min(best.get(name, seconds), seconds)
            figures = ", ".join(f"{name} {seconds:.1f} s" for name, (seconds, _) in results.items())
            print(f"round {n}: {figures}, load {os.getloadavg()[0]:.1f}")
    finally:
        process.terminate()
        process.wait(timeout=10)
    for name in ("connector", "typed", "floor"):
        print(f"{name}: {best[name]:.1f} s  ({args.subscriptions / best[name]:,.0f} subscriptions/s)")
    print(
        f"connector / floor: {best['connector'] / best['floor']:.2f}, typed / floor: {best['typed'] / best['floor']:.2f}"
        f"  (load average {os.getloadavg()})"
    )


if __name__ == "__main__":
    main()
