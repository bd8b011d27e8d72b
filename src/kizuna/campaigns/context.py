"""A template's variables for one recipient, as a campaign run gives them: the customer's row and the recipient's."""

from __future__ import annotations

import json
from typing import Any

from kizuna.core.connection import Connection
from kizuna.core.sql_dialect import dialect_of
from kizuna.core.warehouse import table_exists

# The marts a customer's context is read from (a preview needs all three).
CONTEXT_MARTS = ("customers", "contacts", "subscription_renewals")

# One row per customer: its mart row, its primary contact and its next renewal, as selection picks them for a
# campaign with the default `contacts: primary` (kizuna.campaigns.select): the primary contact only (a customer
# without one has no contact), and the earliest renewal still ahead, ties broken by subscription_id.
_CUSTOMER_CONTEXT_SQL = """
    WITH renewals AS (
        SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY renewal_on, subscription_id) AS n
        FROM marts.subscription_renewals WHERE days_to_renewal >= 0
    ),
    primary_contacts AS (
        SELECT * FROM (
            SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY contact_id) AS contact_n
            FROM marts.contacts WHERE is_primary
        ) AS ranked WHERE contact_n = 1
    )
    SELECT c.*, c.name AS customer_name,
           ct.contact_id, ct.contact_name, ct.email, ct.locale,
           r.product, r.plan, r.mrr, r.currency, r.contract_term_months, r.renewal_on, r.days_to_renewal
    FROM marts.customers c
    LEFT JOIN primary_contacts ct ON ct.customer_id = c.customer_id
    LEFT JOIN renewals r ON r.customer_id = c.customer_id AND r.n = 1"""


def recipient_context(row: dict[str, Any]) -> dict[str, Any]:
    """A template's variables: the customer's mart row (context JSON) overlaid with the recipient row."""
    return {**json.loads(row.pop("context") or "{}"), **row}


def owner_digest_keys(con: Connection) -> set[str]:
    """The variables an owner digest's context gave its template, as campaign selection built it (none yet: empty)."""
    rows = con.execute(
        f"SELECT DISTINCT {dialect_of(con).json_keys('context')} FROM ops.campaign_recipients "
        "WHERE variant = 'owner_digest' AND context IS NOT NULL"
    ).fetchall()
    return {str(r[0]) for r in rows}


def has_context_marts(con: Connection) -> bool:
    return all(table_exists(con, "marts", mart) for mart in CONTEXT_MARTS)


def customer_context(con: Connection, customer_id: str) -> dict[str, Any] | None:
    """What a campaign would give a template for this customer (any status); None if it is not in the marts.

    Columns of the recipient row (contact, renewal) win over the customer's columns of the same name.
    """
    cur = con.execute(f"{_CUSTOMER_CONTEXT_SQL}\n    WHERE c.customer_id = ?", [customer_id])
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))


def active_customer_contexts(con: Connection, limit: int) -> list[dict[str, Any]]:
    """The same for active customers with a primary contact, soonest renewal first: samples to preview with."""
    cur = con.execute(
        f"""{_CUSTOMER_CONTEXT_SQL}
    WHERE c.status = 'active' AND ct.contact_id IS NOT NULL
    ORDER BY r.days_to_renewal NULLS LAST, c.customer_id
    LIMIT ?""",
        [limit],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
