"""What changes in a CRM/billing export overnight, as SQL on the previous day's rows (text columns, file order)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from kizuna.core.connection import Connection
from kizuna.demo.accounts import _company_names
from kizuna.demo.catalogue import CORE_PLANS, CRM, INCLUDED, PLANS, monthly_price, tax

PLAN_CHANGE = "プラン変更"  # the cancel reason of a period ended by an up- or downgrade
_PLAN_INDEX = {p.plan: i for i, p in enumerate(PLANS[:CORE_PLANS])}
_KEYS = {
    "customers": "customer_id",
    "contacts": "contact_id",
    "subscriptions": "subscription_id",
    "invoices": "invoice_id",
    "deals": "deal_id",
    "activities": "activity_id",
    "support_tickets": "ticket_id",
}
Row = dict[str, str | None]


@dataclass
class Day:
    """The new day's working state: the tables, the random stream, and each table's change budget and use."""

    con: Connection
    rng: np.random.Generator
    as_of: date
    rate: float
    budget: dict[str, int] = field(default_factory=dict)
    touched: dict[str, set[int]] = field(default_factory=dict)

    @classmethod
    def start(cls, con: Connection, rng: np.random.Generator, as_of: date, rate: float) -> Day:
        """Each table's budget: the change rate times its rows, at least one."""
        day = cls(con, rng, as_of, rate)
        for table in (*_KEYS, "usage"):
            count = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
            day.budget[table] = max(1, round(rate * (int(count[0]) if count else 0)))
            day.touched[table] = set()
        return day

    def left(self, table: str) -> int:
        return max(self.budget[table] - len(self.touched[table]), 0)

    def pick(self, table: str, where: str, k: int, *, fresh: bool = True) -> list[int]:
        """Up to k random rowids of `table` matching `where`, in file order; `fresh`: none changed yet today."""
        found = self.con.execute(f'SELECT rowid FROM "{table}" WHERE {where} ORDER BY rowid').fetchnumpy()["rowid"]
        if fresh:
            found = found[~np.isin(found, np.fromiter(self.touched[table], dtype=np.int64))]
        chosen = self.rng.choice(found, size=min(k, len(found)), replace=False) if k > 0 else found[:0]
        return sorted(int(r) for r in chosen)

    def draw(self, table: str, where: str, k: int) -> list[Row]:
        """k random rows of `table` matching `where`, with repeats, in random order (as references, not changed)."""
        found = self.con.execute(f'SELECT rowid FROM "{table}" WHERE {where} ORDER BY rowid').fetchnumpy()["rowid"]
        if len(found) == 0 or k <= 0:
            return []
        chosen = [int(r) for r in self.rng.choice(found, size=k)]
        by_id = {r: row for r, row in zip(sorted(set(chosen)), self.rows(table, sorted(set(chosen))), strict=True)}
        return [by_id[r] for r in chosen]

    def rows(self, table: str, rowids: list[int]) -> list[Row]:
        result = self.con.execute(
            f'SELECT * FROM "{table}" WHERE rowid IN (SELECT unnest(?::BIGINT[])) ORDER BY rowid', [rowids]
        )
        names = [d[0] for d in result.description]
        return [dict(zip(names, values, strict=True)) for values in result.fetchall()]

    def update(self, table: str, rowids: list[int], column: str, values: Sequence[str | None]) -> None:
        self.con.execute(
            f'UPDATE "{table}" SET "{column}" = v.val FROM (SELECT unnest(?::BIGINT[]) AS rid, unnest(?::VARCHAR[]) AS val) v'
            f' WHERE "{table}".rowid = v.rid',
            [rowids, list(values)],
        )
        self.touched[table].update(rowids)

    def insert(self, table: str, rows: list[Row]) -> None:
        if not rows:
            return
        names = [d[0] for d in self.con.execute(f'DESCRIBE "{table}"').fetchall()]
        # fetchall, not fetchone: an unfinished result would block register below
        before = self.con.execute(f'SELECT coalesce(max(rowid), -1) FROM "{table}"').fetchall()[0]
        # a frame, not executemany: a prepared insert per row costs ~1 ms, 40 s for a 1M-customer day's new rows
        frame = pd.DataFrame([[r.get(n) for n in names] for r in rows], columns=names, dtype=object)
        self.con.register("new_rows", frame)
        try:
            self.con.execute(f'INSERT INTO "{table}" SELECT * FROM new_rows').fetchall()
        finally:
            self.con.unregister("new_rows")
        first = int(before[0]) + 1 if before else 0
        self.touched[table].update(range(first, first + len(rows)))

    def delete(self, table: str, where: str) -> None:
        gone = self.con.execute(f'DELETE FROM "{table}" WHERE {where} RETURNING rowid').fetchall()
        self.touched[table].update(r[0] for r in gone)

    def new_ids(self, table: str, k: int) -> list[str]:
        """The next k ids after the table's largest by number (not by text: "C999999" sorts after "C1000000", the
        1,000,000th customer, whose id outgrew the width), with its prefix and width."""
        key = _KEYS[table]
        top = self.con.execute(
            f"""SELECT "{key}" FROM "{table}" WHERE regexp_full_match("{key}", '\\D*\\d+')
                ORDER BY CAST(regexp_extract("{key}", '\\d+$') AS HUGEINT) DESC LIMIT 1"""
        ).fetchone()
        match = re.fullmatch(r"(\D*)(\d+)", str(top[0] if top else ""))
        if match is None:
            raise ValueError(f"{table}.{key}: cannot continue the ids after {top}")
        prefix, digits = match.groups()
        return [f"{prefix}{int(digits) + i:0{len(digits)}d}" for i in range(1, k + 1)]

    def stamps(self, k: int, day: date | None = None, start_hour: int = 9, hours: int = 10) -> list[str]:
        seconds = self.rng.integers(start_hour * 3600, (start_hour + hours) * 3600, size=k)
        d = (day or self.as_of).isoformat()
        return [f"{d} {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in seconds.tolist()]

    def choose(self, values: list[str]) -> str:
        return values[int(self.rng.integers(len(values)))]


def first_of_previous_month(d: date) -> date:
    return (d.replace(day=1) - timedelta(days=1)).replace(day=1)


def merge_customer(day: Day) -> None:
    """Two CRM records of one company merged: the absorbed one's rows move to the survivor, its record goes.
    The absorbed one is a small account (one subscription), the usual duplicate; its usage history is dropped,
    as metering systems re-key an account rather than add up two."""
    absorbed = day.pick(
        "customers",
        "customer_id IN (SELECT customer_id FROM subscriptions GROUP BY ALL HAVING count(*) = 1)",
        1,
    )
    survivor = day.pick("customers", "customer_id IN (SELECT customer_id FROM subscriptions WHERE end_date IS NULL)", 2)
    if not absorbed or not survivor:
        return
    old = day.rows("customers", absorbed)[0]["customer_id"]
    new = next(r["customer_id"] for r in day.rows("customers", survivor) if r["customer_id"] != old)
    for table in ("subscriptions", "contacts", "invoices", "deals", "activities", "support_tickets"):
        moved = day.pick(table, f"customer_id = '{old}'", 1 << 30)
        day.update(table, moved, "customer_id", [new] * len(moved))
        if table == "contacts":  # the survivor keeps its own primary contact
            day.update(table, moved, "is_primary", ["false"] * len(moved))
    day.delete("usage", f"customer_id = '{old}'")
    day.delete("customers", f"customer_id = '{old}'")


def _live_monthly(before: date) -> str:
    return (
        f"end_date IS NULL AND status = 'active' AND product = '{CRM}' AND contract_term_months = '1'"
        f" AND billing_period_months = '1' AND CAST(start_date AS DATE) < DATE '{before.isoformat()}'"
    )


def cancel_last_month(day: Day) -> None:
    """Cancellations entered today but dated last month (the customer gave notice; sales told billing late): the
    closed month's ending MRR falls. The invoices billed after the end are voided."""
    first = first_of_previous_month(day.as_of)
    chosen = day.pick("subscriptions", _live_monthly(first), max(1, round(day.budget["subscriptions"] * 0.15)))
    reasons = [
        r[0]
        for r in day.con.execute(
            f"SELECT DISTINCT cancel_reason FROM subscriptions WHERE cancel_reason NOT IN ('{PLAN_CHANGE}') ORDER BY 1"
        ).fetchall()
    ] or ["価格"]
    ends = [first + timedelta(days=int(d)) for d in day.rng.integers(0, 28, size=len(chosen))]
    day.update("subscriptions", chosen, "end_date", [e.isoformat() for e in ends])
    day.update("subscriptions", chosen, "status", ["canceled"] * len(chosen))
    day.update("subscriptions", chosen, "cancel_reason", [day.choose(reasons) for _ in chosen])
    day.con.execute(
        "CREATE OR REPLACE TEMP TABLE canceled_today AS"
        " SELECT unnest(?::VARCHAR[]) AS subscription_id, unnest(?::DATE[]) AS end_date",
        [[r["subscription_id"] for r in day.rows("subscriptions", chosen)], ends],
    )
    billed_after_end = (
        "rowid IN (SELECT i.rowid FROM invoices AS i INNER JOIN canceled_today AS c"
        " ON i.subscription_id = c.subscription_id AND CAST(i.period_start AS DATE) >= c.end_date)"
    )
    voided = day.pick("invoices", billed_after_end, 1 << 62)
    day.update("invoices", voided, "status", ["void"] * len(voided))


def change_plan_mid_month(day: Day) -> None:
    """Up- and downgrades effective on the 15th (this month's if past, else last month's): the old period ends
    that day as プラン変更 and a new one starts the same day at the new plan's price, with its first invoice."""
    effective = day.as_of.replace(day=15) if day.as_of.day > 15 else first_of_previous_month(day.as_of).replace(day=15)
    chosen = day.pick(
        "subscriptions",
        _live_monthly(effective - timedelta(days=62)),
        max(1, round(day.budget["subscriptions"] * 0.1)),
    )
    olds = day.rows("subscriptions", chosen)
    day.update("subscriptions", chosen, "end_date", [effective.isoformat()] * len(chosen))
    day.update("subscriptions", chosen, "status", ["canceled"] * len(chosen))
    day.update("subscriptions", chosen, "cancel_reason", [PLAN_CHANGE] * len(chosen))
    news, invoices = [], []
    sub_ids, invoice_ids = day.new_ids("subscriptions", len(olds)), day.new_ids("invoices", len(olds))
    stamps = day.stamps(len(olds), effective, start_hour=6, hours=1)
    for old, sub_id, invoice_id, stamp in zip(olds, sub_ids, invoice_ids, stamps, strict=True):
        plan = _PLAN_INDEX.get(str(old["plan"]), 0)
        plan = plan + 1 if plan + 1 < CORE_PLANS else plan - 1  # the largest plan can only go down
        seats = max(int(old["quantity"] or 0), int(INCLUDED[plan]))
        usd = old["currency"] == "USD"
        mrr = int(monthly_price(np.array([plan]), np.array([seats]), np.array([usd]), np.array([0.0]))[0])
        news.append(
            old
            | {"subscription_id": sub_id, "start_date": effective.isoformat(), "end_date": None, "mrr": str(mrr)}
            | {"amount": None, "plan": PLANS[plan].plan, "quantity": str(seats), "plan_limit": str(seats)}
            | {"status": "active", "cancel_reason": None}
        )
        invoices.append(_invoice(invoice_id, news[-1], stamp, effective, mrr, usd))
    day.insert("subscriptions", news)
    day.insert("invoices", invoices)


def _invoice(invoice_id: str, sub: Row, issued_at: str, start: date, amount: int, usd: bool) -> Row:
    next_month = (start.replace(day=1) + timedelta(days=32)).replace(day=1)
    end = next_month.replace(day=min(start.day, 28)) - timedelta(days=1)
    return {
        "invoice_id": invoice_id,
        "customer_id": sub["customer_id"],
        "subscription_id": sub["subscription_id"],
        "issued_at": issued_at,
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "amount": str(amount),
        "tax": str(int(tax(np.array([amount]), np.array([usd]))[0])),
        "currency": sub["currency"],
        "status": "open",
    }


def late_invoices(day: Day) -> None:
    """One-off invoices (extra seats used last month) issued with last month's date: a closed month gets new
    billing rows the day after it was reported."""
    first = first_of_previous_month(day.as_of)
    chosen = day.pick("subscriptions", _live_monthly(first), max(1, round(day.budget["invoices"] * 0.05)))
    subs = day.rows("subscriptions", chosen)
    days = [first + timedelta(days=int(d)) for d in day.rng.integers(0, 28, size=len(subs))]
    ids = day.new_ids("invoices", len(subs))
    rows = []
    for sub, issued, invoice_id in zip(subs, days, ids, strict=True):
        usd = sub["currency"] == "USD"
        amount = max(int(float(sub["mrr"] or 0) * 0.1) // 10 * 10, 10)
        stamp = day.stamps(1, issued, start_hour=10, hours=8)[0]
        rows.append(_invoice(invoice_id, sub, stamp, issued, amount, usd) | {"period_start": first.isoformat()})
    day.insert("invoices", rows)


def new_customers(day: Day) -> None:
    """Sign-ups of the day: a customer record, a primary contact, a trial subscription and the won deal."""
    k = max(1, round(day.budget["customers"] * 0.5))
    names, _, _ = _company_names()
    templates = day.rows("customers", day.pick("customers", "country = 'JP'", k))
    ids = day.new_ids("customers", len(templates))
    contact_ids, sub_ids = day.new_ids("contacts", len(ids)), day.new_ids("subscriptions", len(ids))
    deal_ids, stamps = day.new_ids("deals", len(ids)), day.stamps(len(ids))
    customers, contacts, subs, deals = [], [], [], []
    for t, cid, contact_id, sub_id, deal_id, stamp in zip(
        templates, ids, contact_ids, sub_ids, deal_ids, stamps, strict=True
    ):
        customers.append(t | {"customer_id": cid, "name": day.choose(names), "created_at": stamp})
        contacts.append(
            {"contact_id": contact_id, "customer_id": cid, "email": f"info.{cid.lower()}@example.co.jp"}
            | {"name": None, "role": "担当者", "is_primary": "true", "marketing_opt_in": "true", "locale": "ja"}
        )
        subs.append(
            {"subscription_id": sub_id, "customer_id": cid, "start_date": day.as_of.isoformat(), "mrr": "30000"}
            | {"billing_period_months": "1", "product": CRM, "plan": "Starter", "quantity": "10", "plan_limit": "10"}
            | {"contract_term_months": "1", "currency": "JPY", "status": "trialing"}
        )
        deals.append(
            {"deal_id": deal_id, "customer_id": cid, "type": "new", "stage": "closed_won", "amount": "360000"}
            | {"created_at": stamp, "closed_at": stamp, "is_won": "true", "source": "inbound"}
        )
    day.insert("customers", customers)
    day.insert("contacts", contacts)
    day.insert("subscriptions", subs)
    day.insert("deals", deals)
