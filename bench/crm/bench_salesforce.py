"""Benchmark: 100,000 Salesforce accounts' kizuna fields written by the Salesforce target, every answer 100 ms late.

    python -m bench.crm.bench_salesforce [--accounts 100000] [--delay 0.1] [--collections]

The org stand-in of the tests (tests/standins/salesforce_api.py) runs in its own process on 127.0.0.1, seeded
with the accounts and answering each request `--delay` seconds late. The target creates the custom fields, reads
the account ids back (SOQL, 2,000 a page), then times `update_accounts` for every account (four fields changed
each): through Bulk API 2.0 (the default above the threshold), and with `--collections` also through sObject
Collections (200 a request, sequential) for comparison.
"""

from __future__ import annotations

import argparse
import time
from datetime import date

from bench.harness.standin import start_standin
from kizuna.crm.salesforce import SalesforceTarget
from kizuna.crm.target import AccountUpdate, FieldSpec
from tests.standins.salesforce_api import CLIENT_ID, CLIENT_SECRET

FIELDS = [
    FieldSpec("kizuna_rank", "Kizuna rank", "enumeration", ("A", "B", "C")),
    FieldSpec("kizuna_churn_risk", "Churn risk", "number"),
    FieldSpec("kizuna_next_action", "Next action", "string"),
    FieldSpec("kizuna_last_touch_on", "Last kizuna touch", "date"),
]


def updates(ids: list[str], round_no: int) -> list[AccountUpdate]:
    return [
        AccountUpdate(
            f"C{n:06d}",
            account,
            {
                "kizuna_rank": "ABC"[(n + round_no) % 3],
                "kizuna_churn_risk": round((n % 1000) / 1000 + round_no, 3),
                "kizuna_next_action": f"更新の3か月前: 利用状況を確認する ({round_no})",
                "kizuna_last_touch_on": date(2026, 12, 1 + round_no),
            },
        )
        for n, account in enumerate(ids)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--collections", action="store_true", help="also time the sObject Collections path")
    args = parser.parse_args()
    process, url = start_standin("salesforce_api", "--accounts", args.accounts, "--delay", args.delay)
    try:
        target = SalesforceTarget(url, CLIENT_ID, CLIENT_SECRET, poll_interval=1.0)
        target.setup(FIELDS, dry_run=False)
        ids = [str(r["Id"]) for r in target.session.query("Account ids", "SELECT Id FROM Account")]
        paths = [("bulk", 1)] + ([("collections", 10**9)] if args.collections else [])
        for round_no, (path, threshold) in enumerate(paths, start=1):
            target.bulk_threshold = threshold
            before = target.stats.requests
            started = time.perf_counter()
            results = target.update_accounts(updates(ids, round_no))
            seconds = time.perf_counter() - started
            failed = sum(r.error is not None for r in results)
            print(
                f"{path}: {len(results):,} accounts in {seconds:.1f} s, {target.stats.requests - before} requests, "
                f"{failed} failed (stand-in delay {args.delay * 1000:.0f} ms)",
                flush=True,
            )
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
