"""Benchmark: 100,000 HubSpot contacts, 100 per page, pulled by the connector into a staged raw table.

    python -m bench.connectors.bench_hubspot [--contacts 100000] [--rounds 2] [--workdir /tmp/kizuna-bench-hubspot]

The HubSpot stand-in of the tests (tests/standins/hubspot_api.py) runs in its own process on 127.0.0.1,
seeded with the contacts. Each round times, side by side under the same load:

- connector: `kizuna ingest` with contacts routed to HubSpot (stage_sources: the official client's searches,
  10 search windows of 10,000, mapping, the contract CSV, the file parser, the merge into raw_incoming);
- floor: a bare loop of requests.get over the same contacts, 100 per page (the list endpoint), JSON decoded
  and nothing else: what the stand-in and HTTP alone cost.

The best round of each is reported, with the ratio and the load average; figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import requests
import yaml
from pydantic import SecretStr

from kizuna.core.runtime import quiet_third_parties

quiet_third_parties()

from bench.harness.standin import start_standin  # noqa: E402
from kizuna.core.settings import Settings  # noqa: E402
from kizuna.core.warehouse import connect  # noqa: E402
from kizuna.sources.ingest import stage_sources  # noqa: E402

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"  # the stand-in's token (tests/standins/hubspot_api.py)
PROPERTIES = "email,firstname,lastname,jobtitle,hs_language,hs_email_optout,hs_legal_basis,associatedcompanyid"


def connector_round(work: Path, url: str) -> tuple[float, int]:
    """Seconds for stage_sources with contacts from HubSpot (customers, subscriptions: one-line files)."""
    shutil.rmtree(work, ignore_errors=True)
    src = work / "src"
    src.mkdir(parents=True)
    (src / "customers.csv").write_text("customer_id,name\n1,株式会社ベンチ00001\n", encoding="utf-8")
    (src / "subscriptions.csv").write_text("subscription_id,customer_id,start_date,mrr\nS1,1,2026-01-01,1000\n")
    config = work / "sources.yaml"
    config.write_text(yaml.safe_dump({"tables": {"contacts": "hubspot"}}), encoding="utf-8")
    settings = Settings(
        source_dir=src,
        warehouse=work / "warehouse.duckdb",
        var_dir=work / "var",
        sources_config=config,
        hubspot_token=SecretStr(TOKEN),
        hubspot_base_url=url,
    )
    started = time.perf_counter()
    stage_sources(settings)
    seconds = time.perf_counter() - started
    with connect(settings.warehouse, read_only=True) as con:
        row = con.execute("SELECT count(*) FROM raw_incoming.contacts").fetchone()
    return seconds, int(row[0]) if row else 0


def floor_round(url: str) -> tuple[float, int]:
    """Seconds for a bare requests.get loop over the same contacts, 100 per page."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    started = time.perf_counter()
    after: str | None = None
    count = 0
    while True:
        params = {"limit": "100", "properties": PROPERTIES, **({"after": after} if after else {})}
        answer = session.get(f"{url}/crm/v3/objects/contacts", params=params, timeout=30).json()
        count += len(answer["results"])
        after = ((answer.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kizuna-bench-hubspot"))
    args = parser.parse_args()
    started = time.perf_counter()
    process, url = start_standin("hubspot_api", "--contacts", args.contacts)
    print(f"stand-in with {args.contacts:,} contacts at {url} (seeded in {time.perf_counter() - started:.1f} s)")
    best: dict[str, float] = {}
    try:
        for n in range(1, args.rounds + 1):
            seconds, rows = connector_round(args.workdir, url)
            assert rows == args.contacts, f"staged {rows:,} of {args.contacts:,} contacts"
            best["connector"] = min(best.get("connector", seconds), seconds)
            floor, count = floor_round(url)
            assert count == args.contacts
            best["floor"] = min(best.get("floor", floor), floor)
            print(f"round {n}: connector {seconds:.1f} s, floor {floor:.1f} s, load {os.getloadavg()[0]:.1f}")
    finally:
        process.terminate()
        process.wait(timeout=10)
    for name in ("connector", "floor"):
        print(f"{name}: {best[name]:.1f} s  ({args.contacts / best[name]:,.0f} contacts/s)")
    print(f"connector / floor: {best['connector'] / best['floor']:.2f}  (load average {os.getloadavg()})")


if __name__ == "__main__":
    main()
