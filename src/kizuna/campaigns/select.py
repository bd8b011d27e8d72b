"""Audience selection: from the marts to one row per (campaign, contact) with a reason when excluded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from kizuna.campaigns.ledger import LEDGER_TABLE, SETTLED_STATES, ensure_ledger
from kizuna.campaigns.spec import Campaign
from kizuna.warehouse import OPS_SCHEMA

RECIPIENTS_TABLE = f"{OPS_SCHEMA}.campaign_recipients"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

# Reasons a contact of a selected customer does not get the message, in the order they are decided.
EXCLUSION_REASONS = (
    "no_contact",
    "invalid_email",
    "no_marketing_consent",
    "duplicate_email",
    "already_sent",
    "over_cap",
)


@dataclass(frozen=True)
class Selection:
    campaign: str
    run_id: str
    selected: int
    excluded: dict[str, int]


def _audience_sql(campaign: Campaign) -> tuple[str, list[object]]:
    """SQL for the qualifying customers, one row each, with the occasion that makes the message unique."""
    a = campaign.audience
    where: list[str] = []
    params: list[object] = []
    if a.status:
        where.append("c.status = ?")
        params.append(a.status)
    if a.tenure_months:
        if a.tenure_months.min is not None:
            where.append("c.tenure_months >= ?")
            params.append(a.tenure_months.min)
        if a.tenure_months.max is not None:
            where.append("c.tenure_months <= ?")
            params.append(a.tenure_months.max)
    if a.mrr:
        if a.mrr.min is not None:
            where.append("c.current_mrr >= ?")
            params.append(a.mrr.min)
        if a.mrr.max is not None:
            where.append("c.current_mrr <= ?")
            params.append(a.mrr.max)
    if a.where:
        where.append(f"({a.where})")

    if a.renewal_within_days is not None:
        renewal_where = ["r.days_to_renewal BETWEEN 0 AND ?"]
        renewal_params: list[object] = [a.renewal_within_days]
        if a.contract_term_months:
            renewal_where.append("r.contract_term_months IN (SELECT unnest(?::INTEGER[]))")
            renewal_params.append(a.contract_term_months)
        source = f"""
            (SELECT r.customer_id,
                    min(r.renewal_on) AS renewal_on,
                    arg_min(r.days_to_renewal, r.renewal_on) AS days_to_renewal,
                    arg_min(r.product, r.renewal_on) AS product,
                    arg_min(r.plan, r.renewal_on) AS plan,
                    arg_min(r.mrr, r.renewal_on) AS mrr,
                    arg_min(r.currency, r.renewal_on) AS currency,
                    arg_min(r.contract_term_months, r.renewal_on) AS contract_term_months
             FROM marts.subscription_renewals r
             WHERE {" AND ".join(renewal_where)}
             GROUP BY r.customer_id)"""
        sql = f"""
            SELECT c.customer_id, c.name AS customer_name, c.owner_email, s.renewal_on, s.days_to_renewal,
                   s.product, s.plan, s.mrr, s.currency, s.contract_term_months,
                   strftime(s.renewal_on, '%Y-%m-%d') AS occasion
            FROM marts.customers c JOIN {source} s USING (customer_id)
            {"WHERE " + " AND ".join(where) if where else ""}"""
        return sql, renewal_params + params
    if a.contract_term_months:
        where.append("c.contract_term_months IN (SELECT unnest(?::INTEGER[]))")
        params.append(a.contract_term_months)
    sql = f"""
        SELECT c.customer_id, c.name AS customer_name, c.owner_email, NULL::DATE AS renewal_on,
               NULL::INTEGER AS days_to_renewal, NULL AS product, NULL AS plan, c.current_mrr AS mrr,
               'JPY' AS currency, c.contract_term_months, 'once' AS occasion
        FROM marts.customers c
        {"WHERE " + " AND ".join(where) if where else ""}"""
    return sql, params


def select_recipients(con: duckdb.DuckDBPyConnection, campaign: Campaign, run_id: str, as_of: date) -> Selection:
    """Write this run's candidates for one campaign to ops.campaign_recipients, each selected or excluded."""
    ensure_ledger(con)
    con.execute(f"""
        CREATE TABLE IF NOT EXISTS {RECIPIENTS_TABLE} (
            run_id VARCHAR, as_of DATE, campaign VARCHAR, customer_id VARCHAR, customer_name VARCHAR,
            contact_id VARCHAR, contact_name VARCHAR, email VARCHAR, locale VARCHAR, owner_email VARCHAR,
            occasion VARCHAR, renewal_on DATE, days_to_renewal INTEGER, product VARCHAR, plan VARCHAR,
            mrr DECIMAL(18,2), currency VARCHAR, contract_term_months INTEGER,
            message_key VARCHAR, is_selected BOOLEAN, exclusion_reason VARCHAR)""")
    con.execute(f"DELETE FROM {RECIPIENTS_TABLE} WHERE run_id = ? AND campaign = ?", [run_id, campaign.name])
    audience_sql, params = _audience_sql(campaign)
    contact_filter = "AND ct.is_primary" if campaign.contacts == "primary" else ""
    con.execute(
        f"""
        INSERT INTO {RECIPIENTS_TABLE}
        WITH audience AS ({audience_sql}),
        candidates AS (
            SELECT a.*, ct.contact_id, ct.contact_name, ct.email,
                   coalesce(ct.locale, ?) AS locale, ct.is_marketing_opted_in
            FROM audience a
            LEFT JOIN marts.contacts ct ON ct.customer_id = a.customer_id {contact_filter}
        ),
        keyed AS (
            -- The idempotency key of one message: same campaign, contact and occasion never get two.
            SELECT *,
                   CASE WHEN contact_id IS NULL THEN NULL
                        ELSE substr(sha256(? || chr(31) || contact_id || chr(31) || occasion), 1, 32) END
                       AS message_key
            FROM candidates
        ),
        reasoned AS (
            SELECT k.*,
                   CASE
                     WHEN k.contact_id IS NULL THEN 'no_contact'
                     WHEN NOT regexp_matches(coalesce(k.email, ''), ?) THEN 'invalid_email'
                     WHEN NOT coalesce(k.is_marketing_opted_in, false) THEN 'no_marketing_consent'
                     WHEN row_number() OVER (PARTITION BY k.email
                                             ORDER BY k.is_marketing_opted_in DESC NULLS LAST, k.customer_id, k.contact_id) > 1
                       THEN 'duplicate_email'
                     WHEN l.message_key IS NOT NULL THEN 'already_sent'
                   END AS reason
            FROM keyed k
            LEFT JOIN {LEDGER_TABLE} l ON l.message_key = k.message_key AND l.state IN {SETTLED_STATES}
        ),
        capped AS (
            SELECT *,
                   CASE WHEN reason IS NULL
                         AND row_number() OVER (PARTITION BY reason IS NULL ORDER BY days_to_renewal, customer_id,
                                                contact_id) > ?
                        THEN 'over_cap' ELSE reason END AS exclusion_reason
            FROM reasoned
        )
        SELECT ?, ?::DATE, ?, customer_id, customer_name, contact_id, contact_name, email, locale, owner_email,
               occasion, renewal_on, days_to_renewal, product, plan, mrr, currency, contract_term_months,
               message_key, exclusion_reason IS NULL, exclusion_reason
        FROM capped
        """,
        [
            *params,
            campaign.locale,
            campaign.name,
            EMAIL_PATTERN,
            campaign.max_recipients,
            run_id,
            as_of,
            campaign.name,
        ],
    )
    rows = con.execute(
        f"SELECT coalesce(exclusion_reason, 'selected'), count(*) FROM {RECIPIENTS_TABLE} "
        "WHERE run_id = ? AND campaign = ? GROUP BY 1",
        [run_id, campaign.name],
    ).fetchall()
    counts = {str(r[0]): int(r[1]) for r in rows}
    selected = counts.pop("selected", 0)
    return Selection(campaign.name, run_id, selected, counts)
