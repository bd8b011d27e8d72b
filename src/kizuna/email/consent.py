"""Who may get campaign mail: suppressed addresses and the anti-spam law's lawful basis, as SQL over the warehouse."""

from __future__ import annotations

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.warehouse import column_exists, table_exists

# Events after which an address gets no more campaign mail (opt-out always wins; bounces protect the sender).
SUPPRESSING_EVENTS = ("unsubscribe", "group_unsubscribe", "bounce", "dropped", "spamreport")
# Customers whose business relationship is a lawful basis without an opt-in (KIZUNA_LAWFUL_BASIS=relationship).
RELATIONSHIP_STATUSES = ("active", "churned")


def suppressed_sql(con: Connection, email: str) -> str:
    """SQL that is true when the address ``email`` (an SQL expression) is suppressed.

    'false' on a warehouse whose events loader never ran: nothing is suppressed yet.
    """
    if not table_exists(con, ops.SUPPRESSIONS.schema, ops.SUPPRESSIONS.table):
        return "false"
    return f"EXISTS (SELECT 1 FROM {ops.SUPPRESSIONS} x WHERE x.email = {email})"


def relationship_allows_sql(con: Connection, lawful_basis: str, contact: str = "ct") -> str:
    """SQL that is true when the contact (alias ``contact`` of marts.contacts) may be mailed without opt-in.

    Only with lawful_basis 'relationship', and never for a contact who opted out. Older marts may lack
    marketing_consent: then nothing is known beyond opt-in, and no opt-out is on record.
    """
    if lawful_basis != "relationship":
        return "false"
    if column_exists(con, "marts", "contacts", "marketing_consent"):
        return f"{contact}.marketing_consent <> 'opted_out'"
    return "true"


def lawful_basis_sql(con: Connection, lawful_basis: str, *, customer_status: str, contact: str = "ct") -> str:
    """SQL for why a contact may be mailed, 'consent' or 'relationship', NULL when nothing allows it.

    The relationship basis holds only for a customer who is or was one (``customer_status``, an SQL
    expression): a prospect's contacts need an opt-in.
    """
    statuses = ", ".join(f"'{s}'" for s in RELATIONSHIP_STATUSES)
    return f"""CASE WHEN {contact}.is_marketing_opted_in THEN 'consent'
                        WHEN {relationship_allows_sql(con, lawful_basis, contact)}
                             AND {customer_status} IN ({statuses})
                            THEN 'relationship'
                   END"""
