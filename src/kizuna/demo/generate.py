"""The demo data generator's entry point: one CSV per source-contract table, deterministic per inputs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np

from kizuna.demo.accounts import contacts_table, customers_table, draw_customers
from kizuna.demo.billing import invoices_table
from kizuna.demo.deals import deals_table
from kizuna.demo.engagement import activities_table, tickets_table
from kizuna.demo.output import OutTable, write_tables
from kizuna.demo.subscriptions import draw_subscriptions, subscriptions_table
from kizuna.demo.usage import usage_table

log = logging.getLogger(__name__)

# One random stream per part, so changing how one table is drawn leaves the others' bytes alone.
_STREAMS = (
    "customers", "customer_rows", "contacts", "subscriptions", "invoices", "usage", "deals", "activities", "tickets",
    "deal_handoffs",
)  # fmt: skip  # append only: spawn order fixes each stream's seed


def generate_demo_data(
    out_dir: Path,
    customers: int,
    seed: int,
    as_of: date,
    *,
    encoding: str = "utf-8",
    customers_as_excel: bool = False,
) -> dict[str, int]:
    """Write a Japanese B2B SaaS company's customer data, about four years of it ending at `as_of`.

    The company ("kizuna demo") sells a CRM Suite in three plans, Starter / Standard / Enterprise
    (¥30,000 / ¥80,000 / ¥250,000 a month with 10 / 20 / 50 seats, more seats at ¥2,000-2,500 each),
    and two add-ons, Analytics (¥20,000) and a Premium Support plan (¥50,000). About 3% of customers
    are abroad and pay in USD, without consumption tax.

    Files (header = the source contract's columns in order; dates YYYY-MM-DD; timestamps
    'YYYY-MM-DD HH:MM:SS' Tokyo wall-clock time without offset; booleans true/false; NULL as ""):

    - customers: C000001..; company names composed from word lists; log-normal employee counts
      (median ~45); Tokyo-heavy prefectures; the largest 10% have an account executive (owner_email).
    - contacts: 1-4 per customer, exactly one primary; addresses at example.co.jp / example.com only.
    - subscriptions: per customer a chain of CRM plan periods. A period ends in an upgrade or a
      downgrade (a new row starts the same day; the old one is canceled with reason プラン変更), in
      churn (canceled with a Japanese reason), or in churn followed by a win-back after 3-14 months.
      Monthly customers (term 1) bill `mrr`; annual ones (term 12) either bill `mrr` monthly or pay
      `amount` for 12 months up front, change plans only at anniversaries, and some state the
      current term's end as end_date. A sixth to a quarter of live annual rows renew within 60 days
      of `as_of` (more in February and March: April fiscal-year starts are common). Other live rows
      are open-ended. Recent monthly sign-ups are trialing; a few are past_due or paused. Add-ons
      are cross-sold 2-30 months in and end with the CRM at the latest.
    - invoices: one per billing period started by `as_of`; tax 10% in yen; recent ones mostly open.
    - usage: active_users and api_calls for the 12 complete months before `as_of`'s month; 15% of
      customers run at 90-100% of plan_limit, a tenth decline over the last four months, churners fade.
    - deals: won deals behind every first, upgraded, win-back and add-on row; renewals of the last
      year (won, or lost on churn) and of the next 90 days (open); open and lost upsells. CSQL deals
      (inside-sales upsells and cross-sells) name their inside-sales creator; on accounts with an account
      executive they are handed off to them and mostly accepted within two business days.
    - activities: calls, e-mails, meetings, visits and notes in the last year; a fifth of accounts
      have been left alone for 3-17 weeks.
    - support_tickets: last year, more from customers whose usage declines.

    The same (customers, seed, as_of, encoding, customers_as_excel) give byte-identical files.
    `encoding="cp932"` writes what Japanese Excel saves (CP932, CRLF); `customers_as_excel` writes
    customers.xlsx instead of customers.csv. Returns the rows written per file name.
    """
    started = time.perf_counter()
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    rng = {name: np.random.Generator(np.random.PCG64(child)) for name, child in zip(_STREAMS, children, strict=True)}

    tables = _draw(customers, as_of, rng)
    written = write_tables(tables, out_dir, encoding=encoding, excel=("customers",) if customers_as_excel else ())
    log.info(
        "demo data: %d customers, %d rows in %.1fs to %s",
        customers, sum(written.values()), time.perf_counter() - started, out_dir,
    )  # fmt: skip
    return written


def _draw(customers: int, as_of: date, rng: dict[str, np.random.Generator]) -> Iterator[OutTable]:
    """The tables, biggest first, each drawn only when asked for so the writer can work on the last one."""
    people = draw_customers(customers, rng["customers"])
    subs, history = draw_subscriptions(people, as_of, rng["subscriptions"])
    yield invoices_table(subs, as_of, rng["invoices"])
    usage, signals = usage_table(subs, customers, as_of, rng["usage"])
    yield usage
    yield subscriptions_table(subs)
    yield activities_table(people, history, as_of, rng["activities"])
    yield deals_table(subs, signals, people.owner, as_of, rng["deals"], rng["deal_handoffs"])
    yield contacts_table(people, rng["contacts"])
    yield customers_table(people, history.first_start, rng["customer_rows"])
    yield tickets_table(people, history, signals, as_of, rng["tickets"])
