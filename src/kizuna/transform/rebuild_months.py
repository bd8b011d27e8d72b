"""The first month the incremental models must rebuild, from two snapshots of the billing tables (docs/incremental.md)."""

from __future__ import annotations

from datetime import date

from kizuna.core.connection import Connection
from kizuna.core.contract import TABLES_BY_NAME

# A change to one of these moves a subscription's MRR in every month it runs (old and new start included); a change to
# anything else (its end, its cancel reason, active to canceled) only from the earlier of its old and new end.
WHOLE_SPAN_COLUMNS = ("customer_id", "start_date", "mrr", "amount", "billing_period_months", "quantity", "currency")
# Statuses that change what a subscription counts in every month it runs: trialing counts 0, paused 0 in the as-of
# month. past_due only ends it (its oldest unpaid invoice after the last paid one, plus the grace days), so a change
# to or from it, or to its invoices, touches the months from that invoice (old and new), or its end date.
COUNTING_STATUSES = ("trialing", "paused")
# The raw tables the incremental models read: a change elsewhere does not move their months.
READ_TABLES = ("subscriptions", "invoices", "fx_rates")


def _row(alias: str, table: str) -> str:
    return "(" + ", ".join(f'{alias}."{c}"' for c in TABLES_BY_NAME[table].column_names) + ")"


def month_of(expression: str) -> str:
    """SQL: the first day of the month of a date or timestamp expression, as a date."""
    return f"cast(date_trunc('month', {expression}) as date)"


def _unpaid_since(invoices: str) -> str:
    """Per subscription, the day of its oldest open invoice after its last paid one (doc block past_due), taken
    early: the UTC day (the business day is never earlier) and no as-of cut-off (more invoices, never a later day)."""
    return f"""
        select i.subscription_id, min(cast(i.issued_at as date)) as since
        from {invoices} as i
        left join (
            select subscription_id, max(issued_at) as last_paid_at from {invoices} as paid
            where status = 'paid' group by subscription_id
        ) as p on i.subscription_id = p.subscription_id
        where i.status = 'open' and i.subscription_id is not null
            and (p.last_paid_at is null or i.issued_at > p.last_paid_at)
        group by i.subscription_id"""


def earliest_month_changed(con: Connection, before: str, after: str, as_of: date) -> date:
    """The earliest month a change from schema `before` to schema `after` touches in what the incremental models
    read (subscriptions, invoices, fx_rates), old values included; the as-of month when no change reaches further
    back. Other tables feed only models that are rebuilt whole, so their changes do not count here.

    For the daily run: `before` the last good load (raw), `after` the staged one (raw_incoming). A table missing
    from `after` (no file: it is published empty) counts as empty.
    """
    (found,) = con.execute(
        f"select min({month_of('day')}) from ({touched_days(con, before, after)}) as touched"
    ).fetchone() or (None,)
    return earliest_month(found, as_of)


def earliest_month(found: date | None, as_of: date) -> date:
    """The first month to rebuild from the earliest month a change touches: the as-of month is always rebuilt."""
    month = as_of.replace(day=1)
    return min(found, month) if found is not None else month


def _sources(con: Connection, before: str, after: str, only: str | None) -> tuple[str, ...]:
    """SQL of what touched_days compares: subscriptions and invoices before and after (those of `only`'s
    subscriptions), fx rates after; a table missing from `after` counts as empty."""
    names = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type IN ('BASE TABLE', 'VIEW')",
            [after],
        ).fetchall()
    }
    subscriptions, invoices, fx_rates = (
        f"{after}.{t}" if t in names else f"(select * from {before}.{t} limit 0)" for t in READ_TABLES
    )
    old_subscriptions, old_invoices = f"{before}.subscriptions", f"{before}.invoices"
    if only is not None:
        kept = f"subscription_id in (select subscription_id from {only})"
        old_subscriptions, subscriptions = (
            f"(select * from {t} as rows_of where subscription_id is null or {kept})"
            for t in (old_subscriptions, subscriptions)
        )
        old_invoices, invoices = (f"(select * from {t} as rows_of where {kept})" for t in (old_invoices, invoices))
    return old_subscriptions, subscriptions, old_invoices, invoices, fx_rates


def touched_days(con: Connection, before: str, after: str, only: str | None = None) -> str:
    """SQL of the days a change from `before` to `after` touches, one row per change and customer it moves
    (`customer_id`, `day`): a subscription's old and new customer both (a merge moves the absorbed customer's
    months and the absorbing one's), an fx rate with customer_id NULL (it moves every customer paying in it).

    `only`: a table of `subscription_id`s holding every subscription the change may touch (its own rows changed,
    or one of its invoices'): only those subscriptions and their invoices are compared, with the same result as
    comparing all (a subscription without an id is kept: it never matches, so it always counts as changed; an
    invoice without one dates nothing)."""
    old_subscriptions, subscriptions, old_invoices, invoices, fx_rates = _sources(con, before, after, only)
    statuses = ", ".join(f"'{s}'" for s in COUNTING_STATUSES)
    fx = ", ".join(f'"{c}"' for c in TABLES_BY_NAME["fx_rates"].column_names)
    whole_span = " or ".join(f'o."{c}" is distinct from n."{c}"' for c in WHOLE_SPAN_COLUMNS)
    return f"""
    with
    subscriptions_changed as (
        select o.subscription_id as old_id, o.status as old_status, o.start_date as old_start, o.end_date as old_end,
            cast(o.customer_id as varchar) as old_customer, cast(n.customer_id as varchar) as new_customer,
            n.subscription_id as new_id, n.status as new_status, n.start_date as new_start, n.end_date as new_end,
            o.subscription_id is null or n.subscription_id is null or {whole_span}
                or o.status in ({statuses}) or n.status in ({statuses}) as is_whole_span,
            o.status = 'past_due' or n.status = 'past_due' as is_past_due
        from {old_subscriptions} as o
        full outer join {subscriptions} as n on o.subscription_id = n.subscription_id
        where {_row("o", "subscriptions")} is distinct from {_row("n", "subscriptions")}
    ),
    invoices_changed as (
        select o.subscription_id as old_id, n.subscription_id as new_id
        from {old_invoices} as o
        full outer join {invoices} as n on o.invoice_id = n.invoice_id
        where {_row("o", "invoices")} is distinct from {_row("n", "invoices")}
    ),
    unpaid_since_before as ({_unpaid_since(old_invoices)}),
    unpaid_since_after as ({_unpaid_since(invoices)}),
    past_due_invoiced as (
        select s.customer_id, least(b.since, a.since, s.end_date) as day
        from (select old_id as id from invoices_changed union select new_id from invoices_changed) as i
        inner join (
            select subscription_id, cast(customer_id as varchar) as customer_id, status, end_date
            from {old_subscriptions} as s_before
            union all
            select subscription_id, cast(customer_id as varchar) as customer_id, status, end_date
            from {subscriptions} as s_after
        ) as s
            on i.id = s.subscription_id
        left join unpaid_since_before as b on s.subscription_id = b.subscription_id
        left join unpaid_since_after as a on s.subscription_id = a.subscription_id
        where s.status = 'past_due'
    ),
    fx_changed as (
        select month from (
            (select {fx} from {before}.fx_rates except all select {fx} from {fx_rates} as fx_after)
            union all
            (select {fx} from {fx_rates} as fx_after except all select {fx} from {before}.fx_rates)
        ) as changed
    ),
    subscriptions_touched as (
        select
            old_customer,
            new_customer,
            case
                when is_whole_span then least(old_start, new_start)
                when is_past_due then least(old_end, new_end, b.since, a.since)
                else least(old_end, new_end)
            end as day
        from subscriptions_changed
        left join unpaid_since_before as b on subscriptions_changed.old_id = b.subscription_id
        left join unpaid_since_after as a on subscriptions_changed.new_id = a.subscription_id
    )
    select old_customer as customer_id, day from subscriptions_touched where old_customer is not null
    union all
    select new_customer, day from subscriptions_touched
    where new_customer is not null and new_customer is distinct from old_customer
    union all
    select customer_id, day from past_due_invoiced
    union all
    select cast(null as varchar), month from fx_changed
    """
