"""A day's ordinary traffic in the export, filling each table's change budget after the backdated changes."""

from __future__ import annotations

from datetime import date, timedelta

from kizuna.demo.overnight import Day, Row, first_of_previous_month


def ordinary_changes(day: Day) -> None:
    """Record edits, opt-outs, payments, dunning, restated usage, deals moving on, and the day's activities and
    tickets, each up to what its table's budget has left."""
    _customer_edits(day)
    _contact_changes(day)
    _subscription_dunning(day)
    _payments(day)
    _restated_usage(day)
    _deals_moving_on(day)
    _new_events(day, "activities", "occurred_at")
    _new_events(day, "support_tickets", "created_at")


def _customer_edits(day: Day) -> None:
    """Headcounts updated by sales (a tenth more or fewer)."""
    chosen = day.pick("customers", "employee_count IS NOT NULL", day.left("customers"))
    counts = [int(r["employee_count"] or 0) for r in day.rows("customers", chosen)]
    factors = day.rng.choice([0.9, 1.1], size=len(counts))
    day.update(
        "customers", chosen, "employee_count", [str(max(1, round(c * f))) for c, f in zip(counts, factors, strict=True)]
    )


def _contact_changes(day: Day) -> None:
    """A third each: marketing opt-outs, new e-mail addresses (the company's new domain), changed roles."""
    k = day.left("contacts")
    out = day.pick("contacts", "marketing_opt_in = 'true'", k // 3)
    day.update("contacts", out, "marketing_opt_in", ["false"] * len(out))
    moved = day.pick("contacts", "email LIKE '%@example.co.jp'", k // 3)
    emails = [str(r["email"]).replace("@example.co.jp", "@example.com") for r in day.rows("contacts", moved)]
    day.update("contacts", moved, "email", emails)
    roles = [
        r[0] for r in day.con.execute("SELECT DISTINCT role FROM contacts WHERE role IS NOT NULL ORDER BY 1").fetchall()
    ]
    promoted = day.pick("contacts", "role IS NOT NULL", day.left("contacts"))
    day.update("contacts", promoted, "role", [day.choose(roles) for _ in promoted])


def _subscription_dunning(day: Day) -> None:
    """Failed card payments (active → past_due) and settled ones (past_due → active), half each."""
    k = day.left("subscriptions")
    failed = day.pick(
        "subscriptions", "status = 'active' AND end_date IS NULL AND contract_term_months = '1'", k - k // 2
    )
    day.update("subscriptions", failed, "status", ["past_due"] * len(failed))
    settled = day.pick("subscriptions", "status = 'past_due'", day.left("subscriptions"))
    day.update("subscriptions", settled, "status", ["active"] * len(settled))


def _payments(day: Day) -> None:
    """Open invoices paid (bank transfers reconciled today)."""
    chosen = day.pick(
        "invoices", f"status = 'open' AND CAST(issued_at AS DATE) < DATE '{day.as_of}'", day.left("invoices")
    )
    day.update("invoices", chosen, "status", ["paid"] * len(chosen))


def _restated_usage(day: Day) -> None:
    """Last complete month's figures restated by late-arriving events (a few percent up)."""
    last_month = first_of_previous_month(day.as_of)
    chosen = day.pick("usage", f"CAST(month AS DATE) = DATE '{last_month}'", day.left("usage"))
    values = [float(r["value"] or 0) for r in day.rows("usage", chosen)]
    bumps = day.rng.uniform(1.01, 1.05, size=len(values))
    day.update("usage", chosen, "value", [str(round(v * b) + 1) for v, b in zip(values, bumps, strict=True)])


def _deals_moving_on(day: Day) -> None:
    """Half the budget closes open deals (two in three won), the other half opens new upsell deals."""
    k = day.left("deals")
    closing = day.pick("deals", "closed_at IS NULL", k // 2)
    won = [bool(w) for w in day.rng.random(len(closing)) < 2 / 3]
    day.update("deals", closing, "stage", ["closed_won" if w else "closed_lost" for w in won])
    day.update("deals", closing, "is_won", ["true" if w else "false" for w in won])
    day.update("deals", closing, "closed_at", day.stamps(len(closing)))
    templates = day.draw("deals", "type = 'upsell'", day.left("deals"))
    ids, stamps = day.new_ids("deals", len(templates)), day.stamps(len(templates))
    day.insert(
        "deals",
        [
            t | {"deal_id": i, "stage": "qualification", "created_at": s, "closed_at": None, "is_won": None}
            for t, i, s in zip(templates, ids, stamps, strict=True)
        ],
    )


def _new_events(day: Day, table: str, stamped: str) -> None:
    """The day's activities or tickets: like random earlier ones (type, outcome, owner, category), at customers
    that still have a live subscription, stamped today."""
    templates = day.draw(table, "true", day.left(table))
    live = "customer_id IN (SELECT customer_id FROM subscriptions WHERE end_date IS NULL)"
    customers = day.draw("customers", live, len(templates))
    ids, stamps = day.new_ids(table, len(templates)), sorted(day.stamps(len(templates), _workday(day.as_of)))
    key = next(iter(templates[0])) if templates else ""
    rows: list[Row] = [
        t | {key: i, "customer_id": c["customer_id"], stamped: s}
        for t, c, i, s in zip(templates, customers, ids, stamps, strict=True)
    ]
    day.insert(table, rows)


def _workday(d: date) -> date:
    # people log work on workdays: a weekend's events are the Friday before, as the day-one generator has them
    return d - timedelta(days=max(d.weekday() - 4, 0))
