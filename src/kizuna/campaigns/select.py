"""Audience selection: SQL over the marts to one row per (campaign, contact), selected or excluded with a reason.

Everything runs as one DuckDB statement per campaign; no Python loop per customer. A selected contact lands in
ops.campaign_recipients with its variant (treatment or holdout) and the rules that matched it (reasons, JSON);
a contact who matched but is left out lands in ops.campaign_exclusions with why, for the campaign's latest
selection only (each selection replaces the campaign's earlier exclusions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from kizuna.campaigns.audience import audience_sql, missing_scores_note
from kizuna.campaigns.ledger import SETTLED_STATES
from kizuna.campaigns.spec import Campaign, Roles
from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.settings import Settings
from kizuna.core.sql_dialect import Dialect, dialect_of
from kizuna.email.consent import lawful_basis_sql, suppressed_sql
from kizuna.sources.fx import reporting_currency

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

# Why a contact of a qualifying customer gets nothing, in the order the rules are applied.
EXCLUSION_REASONS = (
    "no_contact",
    "invalid_email",
    "suppressed",
    "no_marketing_consent",
    "owner_policy",
    "duplicate_email",
    "already_sent",
    "already_held_out",
    "frequency_cap",
    "over_cap",
)


@dataclass(frozen=True)
class Selection:
    campaign: str
    run_id: str
    selected: int  # treatment contacts to send to
    holdout: int
    excluded: dict[str, int] = field(default_factory=dict)  # per reason, treatment and holdout alike
    note: str = ""  # e.g. why nobody qualified: the audience filters on scores the day lacks


def _contact_filter(campaign: Campaign) -> tuple[str, list[Any]]:
    if isinstance(campaign.contacts, Roles):
        return "AND ct.role IN (SELECT unnest(?::VARCHAR[]))", [campaign.contacts.roles]
    if campaign.contacts == "primary":
        return "AND ct.is_primary", []
    return "", []


def _add_owner_digests(con: Connection, campaign: Campaign) -> None:
    """owner_policy owner_digest: each account executive gets one list of their selected accounts instead.

    One digest per owner, campaign and calendar month (its occasion); the accounts stay excluded with reason
    owner_policy, so their contacts get nothing from this campaign.
    """
    dialect = dialect_of(con)
    if dialect.is_postgres:  # each account once, in a stable order
        account = (
            "jsonb_build_object('customer_id', customer_id, 'customer_name', customer_name, 'reasons', reasons::jsonb)"
        )
        accounts = f"jsonb_agg(DISTINCT {account} ORDER BY {account})"
    else:
        accounts = (
            "list(DISTINCT {'customer_id': customer_id, 'customer_name': customer_name, 'reasons': reasons::JSON})"
        )
    context = dialect.json_object([("campaign", "?"), ("description", "?"), ("accounts", accounts)])
    message_key = dialect.sha256_hex("? || chr(31) || 'owner:' || d.owner_email || chr(31) || d.occasion")
    con.execute(
        f"""
        INSERT INTO _selection
        WITH owned AS (
            SELECT * FROM _selection WHERE exclusion_reason = 'owner_policy' AND variant = 'treatment'
        ),
        digests AS (
            SELECT min(run_id) AS run_id, min(as_of) AS as_of, owner_email,
                   substr(CAST(min(as_of) AS VARCHAR), 1, 7) AS occasion, count(DISTINCT customer_id) AS accounts,
                   {context} AS context
            FROM owned GROUP BY owner_email
        ),
        keyed AS (
            SELECT d.*, substr({message_key}, 1, 32) AS message_key
            FROM digests d
        )
        SELECT k.run_id, k.as_of, ?, 'owner_digest', NULL, NULL, 'owner:' || k.owner_email, NULL, k.owner_email,
               ?, k.owner_email, NULL, NULL, k.occasion, NULL, NULL, NULL, NULL, NULL, NULL, NULL, k.message_key,
               l.message_key IS NULL, {dialect.json_object([("accounts", "k.accounts")])}, k.context,
               CASE WHEN l.message_key IS NOT NULL THEN 'already_sent' END
        FROM keyed k
        LEFT JOIN {ops.SEND_LEDGER.name} l ON l.message_key = k.message_key AND l.state IN {SETTLED_STATES}""",
        [campaign.name, campaign.description, campaign.name, campaign.name, campaign.locale],
    )


def ensure_recipient_tables(con: Connection) -> None:
    """ops.campaign_recipients and ops.campaign_exclusions, empty when new (the engagement marts read recipients)."""
    ops.ensure(con, ops.CAMPAIGN_RECIPIENTS, ops.CAMPAIGN_EXCLUSIONS)


def select_recipients(
    con: Connection, campaign: Campaign, run_id: str, as_of: date, settings: Settings | None = None
) -> Selection:
    """Write this run's selection for one campaign: recipients (treatment, holdout) and exclusions with reasons."""
    settings = settings or Settings()
    ops.ensure(con, ops.SEND_LEDGER)
    ensure_recipient_tables(con)
    con.execute(
        f"DELETE FROM {ops.CAMPAIGN_RECIPIENTS.name} WHERE run_id = ? AND campaign = ?", [run_id, campaign.name]
    )
    # Exclusions are kept for the campaign's latest selection only (docs/campaigns.md, "What selection records"):
    # nothing reads an earlier run's, and keeping every run's would add ~1M rows a day at 1M customers.
    con.execute(f"DELETE FROM {ops.CAMPAIGN_EXCLUSIONS.name} WHERE campaign = ?", [campaign.name])
    parts = (
        _candidates(con, campaign, as_of, settings),
        _reasoned(con, campaign, run_id, settings),
        _capped(campaign, run_id, as_of, dialect_of(con)),
    )
    con.execute("DROP TABLE IF EXISTS _selection")
    con.execute(
        "CREATE TEMPORARY TABLE _selection AS WITH " + ",".join(sql for sql, _ in parts),
        [param for _, params in parts for param in params],
    )
    if campaign.owner_policy == "owner_digest":
        _add_owner_digests(con, campaign)
    return _write_selection(con, campaign, run_id, as_of)


def _candidates(con: Connection, campaign: Campaign, as_of: date, settings: Settings) -> tuple[str, list[Any]]:
    """CTEs audience … keyed: each qualifying customer's contacts, with variant, lawful basis and message key."""
    # The customer's whole row (template context) is attached to recipients only, after selection: building
    # it for every excluded candidate too cost most of the time at 1M customers.
    audience, audience_params = audience_sql(
        campaign, as_of, with_context=False, con=con, currency=reporting_currency(settings.dbt_project_dir)
    )
    contact_filter, contact_params = _contact_filter(campaign)
    lawful_basis = lawful_basis_sql(con, settings.lawful_basis, customer_status="v.customer_status")
    holdout_basis_points = round(campaign.holdout_percent * 100)
    dialect = dialect_of(con)
    sql = f"""
        audience AS ({audience}),
        variants AS (
            -- Deterministic per campaign and customer: a customer stays in its group across runs.
            SELECT *, CASE WHEN {dialect.bucket_of("? || ':' || customer_id")} % 10000 < ?
                           THEN 'holdout' ELSE 'treatment' END AS variant
            FROM audience
        ),
        candidates AS (
            SELECT v.*, ct.contact_id, ct.contact_name, ct.email, coalesce(ct.locale, ?) AS locale,
                   ct.is_marketing_opted_in,
                   {lawful_basis} AS lawful_basis
            FROM variants v
            LEFT JOIN marts.contacts ct ON ct.customer_id = v.customer_id {contact_filter}
        ),
        keyed AS (
            -- The idempotency key of one message: same campaign, contact and occasion never get two.
            SELECT *,
                   CASE WHEN contact_id IS NOT NULL
                        THEN substr({dialect.sha256_hex("? || chr(31) || contact_id || chr(31) || occasion")}, 1, 32) END
                       AS message_key
            FROM candidates
        )"""
    params = [*audience_params, campaign.name, holdout_basis_points, campaign.locale, *contact_params, campaign.name]
    return sql, params


def _reasoned(con: Connection, campaign: Campaign, run_id: str, settings: Settings) -> tuple[str, list[Any]]:
    """CTEs recent … reasoned: why each candidate gets nothing (EXCLUSION_REASONS, in order), NULL if it may."""
    freq = campaign.frequency
    max_emails = min(settings.frequency_max_emails, freq.max_emails if freq else settings.frequency_max_emails)
    freq_days = max(settings.frequency_days, freq.days if freq else settings.frequency_days)
    owner_excluded = campaign.owner_policy in ("exclude", "owner_digest")
    dialect = dialect_of(con)
    sql = f"""
        recent AS (
            SELECT email, count(*) AS sends FROM {ops.SEND_LEDGER.name}
            WHERE state IN {SETTLED_STATES} AND claimed_at >= timezone('UTC', now()) - ?::INTEGER * INTERVAL '1 day'
            GROUP BY email
        ),
        held_out AS (
            -- Holdout keys of this campaign's other runs that sent: the holdout moves on to the next contacts
            -- in line as the treatment does past already_sent. A run that sent nothing (held, killed, failed
            -- before sending) consumed neither group; a re-run of this run_id replaces its own rows instead.
            SELECT DISTINCT message_key FROM {ops.CAMPAIGN_RECIPIENTS.name}
            WHERE campaign = ? AND variant = 'holdout' AND run_id <> ?
              AND run_id IN (SELECT run_id FROM {ops.SEND_LEDGER.name} WHERE campaign = ? AND state IN {SETTLED_STATES})
        ),
        first_of_email AS ({_first_of_email(dialect)}),
        reasoned AS (
            SELECT k.*,
                   coalesce(l.run_id = ?, false) AS sent_by_this_run,
                   CASE
                     -- A re-run of this run_id keeps what it sent itself: selected again (claim leaves it alone)
                     -- and first in line for max_recipients, so retrying a run never mails past its cap.
                     WHEN coalesce(l.run_id = ?, false) THEN NULL
                     WHEN k.contact_id IS NULL THEN 'no_contact'
                     WHEN NOT {dialect.matches("coalesce(k.email, '')", "?")} THEN 'invalid_email'
                     WHEN {suppressed_sql(con, "k.email")} THEN 'suppressed'
                     WHEN k.lawful_basis IS NULL THEN 'no_marketing_consent'
                     WHEN ? AND k.owner_email IS NOT NULL THEN 'owner_policy'
                     WHEN f.first_customer_id <> k.customer_id OR f.first_contact_id <> k.contact_id
                       THEN 'duplicate_email'
                     WHEN l.message_key IS NOT NULL THEN 'already_sent'
                     WHEN k.variant = 'holdout' AND h.message_key IS NOT NULL THEN 'already_held_out'
                     -- for the holdout too: a contact treatment could not have mailed is no comparison
                     WHEN coalesce(r.sends, 0) >= ? THEN 'frequency_cap'
                   END AS reason
            FROM keyed k
            LEFT JOIN {ops.SEND_LEDGER.name} l ON l.message_key = k.message_key AND l.state IN {SETTLED_STATES}
            LEFT JOIN recent r ON r.email = k.email
            LEFT JOIN held_out h ON h.message_key = k.message_key
            LEFT JOIN first_of_email f ON f.email = k.email
        )"""
    params = [
        freq_days,
        campaign.name,
        run_id,
        campaign.name,
        run_id,
        run_id,
        EMAIL_PATTERN,
        owner_excluded,
        max_emails,
    ]
    return sql, params


def _capped(campaign: Campaign, run_id: str, as_of: date, dialect: Dialect) -> tuple[str, list[Any]]:
    """CTE capped and the rows of _selection: max_recipients applied to both groups alike."""
    holdout_basis_points = round(campaign.holdout_percent * 100)
    # Both groups must be the same slice of the ranked audience, or the lift compares the most urgent renewals
    # with everyone: the holdout keeps the first max_recipients × h / (1 − h) of its eligible rows (rounded) by
    # the same ordering (h = the holdout fraction; h ≤ 0.5, so never a division by zero).
    holdout_cap = round(campaign.max_recipients * holdout_basis_points / (10_000 - holdout_basis_points))
    capping, capping_params = _over_cap(dialect, campaign.max_recipients, holdout_cap)
    sql = f"""
        {capping}
        SELECT ?::VARCHAR AS run_id, ?::DATE AS as_of, ?::VARCHAR AS campaign, variant, customer_id, customer_name,
               contact_id, contact_name, email, locale, owner_email,
               CASE WHEN ? = 'cc_owner' THEN owner_email END AS cc_email,
               CASE WHEN ? = 'send_from_owner' THEN owner_email END AS from_email,
               occasion, renewal_on, days_to_renewal, product, plan, mrr, currency, contract_term_months,
               message_key, exclusion_reason IS NULL AND variant = 'treatment' AS is_selected,
               {dialect.json_patch("reasons", [("lawful_basis", "lawful_basis")])} AS reasons, context,
               exclusion_reason
        FROM capped
        """
    params = [
        *capping_params,
        run_id,
        as_of,
        campaign.name,
        campaign.owner_policy,
        campaign.owner_policy,
    ]
    return sql, params


def _first_of_email(dialect: Dialect) -> str:
    """The CTE body naming who an address shared by several candidates goes to: opted in first, then by customer
    and contact (unique together)."""
    consent = "CASE WHEN is_marketing_opted_in THEN 0 WHEN NOT is_marketing_opted_in THEN 1 ELSE 2 END"
    if dialect.is_postgres:  # ids compared byte by byte, as DuckDB compares them
        return f"""
            SELECT DISTINCT ON (email) email, customer_id AS first_customer_id, contact_id AS first_contact_id
            FROM keyed WHERE email IS NOT NULL
            ORDER BY email, {consent}, customer_id COLLATE "C", contact_id COLLATE "C"
            """
    # A group's minimum, not a row number over the wide rows: the same first, cheaper (at 1M customers).
    return f"""
            SELECT email, first_key.customer_id AS first_customer_id, first_key.contact_id AS first_contact_id
            FROM (
                SELECT email, min({{'consent': {consent}, 'customer_id': customer_id, 'contact_id': contact_id}})
                           AS first_key
                FROM keyed WHERE email IS NOT NULL GROUP BY email
            ) AS firsts"""


def _over_cap(dialect: Dialect, treatment_cap: int, holdout_cap: int) -> tuple[str, list[Any]]:
    """CTEs keyed_for_cap … capped: each group's eligible rows past its cap become over_cap, in the order unsent
    first (a re-run keeps what it sent), the nearest renewal, customer, contact."""
    if dialect.is_postgres:  # a row number per group; ids compared byte by byte, as DuckDB compares them
        sql = """
        keyed_for_cap AS (
            SELECT *, CASE WHEN reason IS NULL THEN row_number() OVER (
                           PARTITION BY variant = 'treatment', reason IS NULL
                           ORDER BY NOT sent_by_this_run, days_to_renewal IS NULL, coalesce(days_to_renewal, 0),
                                    customer_id COLLATE "C", contact_id COLLATE "C") END AS cap_rank
            FROM reasoned
        ),
        capped AS (
            SELECT k.*,
                   CASE WHEN k.reason IS NULL AND k.cap_rank > CASE k.variant WHEN 'treatment' THEN ? ELSE ? END
                        THEN 'over_cap' ELSE k.reason END AS exclusion_reason
            FROM keyed_for_cap k
        )"""
        return sql, [treatment_cap, holdout_cap]
    sql = """
        keyed_for_cap AS (
            -- The order of a group's eligible rows (unique: a contact once per customer).
            SELECT *, {'unsent': NOT sent_by_this_run, 'no_renewal': days_to_renewal IS NULL,
                       'days_to_renewal': coalesce(days_to_renewal, 0), 'customer_id': customer_id,
                       'contact_id': contact_id} AS cap_key
            FROM reasoned
        ),
        cap_cut AS (
            -- Per group, how many are eligible and the first cap keys of them: a row past the cap's last key
            -- is what numbering the group's rows in that order would put past the cap (a top-N, not a sort).
            SELECT count(*) FILTER (WHERE variant = 'treatment') AS treatment_rows,
                   min(cap_key, ?) FILTER (WHERE variant = 'treatment')[-1] AS treatment_last,
                   count(*) FILTER (WHERE variant <> 'treatment') AS holdout_rows,
                   min(cap_key, ?) FILTER (WHERE variant <> 'treatment')[-1] AS holdout_last
            FROM keyed_for_cap WHERE reason IS NULL
        ),
        capped AS (
            SELECT k.*,
                   CASE WHEN k.reason IS NULL AND CASE k.variant
                            WHEN 'treatment' THEN c.treatment_rows > ? AND (? = 0 OR k.cap_key > c.treatment_last)
                            ELSE c.holdout_rows > ? AND (? = 0 OR k.cap_key > c.holdout_last) END
                        THEN 'over_cap' ELSE k.reason END AS exclusion_reason
            FROM keyed_for_cap k CROSS JOIN cap_cut c
        )"""
    params = [max(treatment_cap, 1), max(holdout_cap, 1), treatment_cap, treatment_cap, holdout_cap, holdout_cap]
    return sql, params


def _write_selection(con: Connection, campaign: Campaign, run_id: str, as_of: date) -> Selection:
    """_selection into recipients (with the customer's row as context) and exclusions; the counts."""
    # every recipient column from the selection but the context, which falls back to the customer's row
    recipient_columns = ", ".join(f"s.{name}" for name, _ in ops.SELECTION_COLUMNS if name != "context")
    con.execute(
        f"""INSERT INTO {ops.CAMPAIGN_RECIPIENTS.name}
            SELECT {recipient_columns}, coalesce(s.context, {dialect_of(con).row_json("c")})
            FROM _selection s LEFT JOIN marts.customers c ON c.customer_id = s.customer_id
            WHERE s.exclusion_reason IS NULL"""
    )
    con.execute(
        f"INSERT INTO {ops.CAMPAIGN_EXCLUSIONS.name} SELECT * FROM _selection WHERE exclusion_reason IS NOT NULL"
    )
    rows = con.execute("SELECT coalesce(exclusion_reason, variant), count(*) FROM _selection GROUP BY 1").fetchall()
    con.execute("DROP TABLE _selection")
    counts = {str(r[0]): int(r[1]) for r in rows}
    treatment = counts.pop("treatment", 0) + counts.pop("owner_digest", 0)
    note = missing_scores_note(con, campaign, as_of) or ""
    return Selection(campaign.name, run_id, treatment, counts.pop("holdout", 0), counts, note)
