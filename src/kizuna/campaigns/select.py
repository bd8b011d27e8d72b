"""Audience selection: SQL over the marts to one row per (campaign, contact), selected or excluded with a reason.

Everything runs as one DuckDB statement per campaign; no Python loop per customer. A selected contact lands in
ops.campaign_recipients with its variant (treatment or holdout) and the rules that matched it (reasons, JSON);
a contact who matched but is left out lands in ops.campaign_exclusions with why.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb

from kizuna.campaigns.ledger import LEDGER_TABLE, SETTLED_STATES, ensure_ledger
from kizuna.campaigns.spec import Campaign, CampaignFileError, Roles, suggestion
from kizuna.core.settings import Settings
from kizuna.core.warehouse import OPS_SCHEMA, column_exists, table_exists

log = logging.getLogger(__name__)

RECIPIENTS_TABLE = f"{OPS_SCHEMA}.campaign_recipients"
EXCLUSIONS_TABLE = f"{OPS_SCHEMA}.campaign_exclusions"
SUPPRESSIONS_TABLE = f"{OPS_SCHEMA}.suppressions"
SCORES_TABLE = "marts.customer_scores"
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

_COLUMNS = """
    run_id VARCHAR, as_of DATE, campaign VARCHAR, variant VARCHAR, customer_id VARCHAR, customer_name VARCHAR,
    contact_id VARCHAR, contact_name VARCHAR, email VARCHAR, locale VARCHAR, owner_email VARCHAR,
    cc_email VARCHAR, from_email VARCHAR, occasion VARCHAR, renewal_on DATE, days_to_renewal INTEGER,
    product VARCHAR, plan VARCHAR, mrr DECIMAL(18,2), currency VARCHAR, contract_term_months INTEGER,
    message_key VARCHAR, is_selected BOOLEAN, reasons VARCHAR, context VARCHAR"""


@dataclass(frozen=True)
class Selection:
    campaign: str
    run_id: str
    selected: int  # treatment contacts to send to
    holdout: int
    excluded: dict[str, int] = field(default_factory=dict)  # per reason, treatment and holdout alike
    note: str = ""  # e.g. why nobody qualified: the audience filters on scores the day lacks


class _Sql:
    """Collects predicates with their parameters, and the JSON 'reasons' that explain each match."""

    def __init__(self) -> None:
        self.where: list[str] = []
        self.params: list[Any] = []
        self.reasons: list[str] = []

    def add(self, predicate: str, *params: Any, reason: tuple[str, str] | None = None) -> None:
        self.where.append(predicate)
        self.params += params
        if reason:
            self.reasons.append(f"'{reason[0]}': {reason[1]}")

    def range(self, column: str, key: str, bounds: Any, *, null_is_infinite: bool = False) -> None:
        """min/max bounds on a column; with null_is_infinite a null lies beyond every number (passes any min,
        fails any max), e.g. days since a touch that never happened. Otherwise a null matches no bound."""
        if bounds is None:
            return
        if bounds.min is not None:
            self.add(f"({column} >= ? OR {column} IS NULL)" if null_is_infinite else f"{column} >= ?", bounds.min)
        if bounds.max is not None:
            self.add(f"{column} <= ?", bounds.max)
        self.reasons.append(f"'{key}': {column}")


def _literal(value: str | list[str]) -> str:
    """A SQL literal for text shown in the reasons JSON (reasons are built before the parameters bind)."""
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return "'" + value.replace("'", "''") + "'"


def _products(column: str) -> str:
    return f"list_transform(string_split(coalesce({column}, ''), ','), lambda x: trim(x))"


# Audience keys read from marts.customer_scores, each with the column prefix of its plain-words factors.
SCORE_KEYS = (("churn_risk", "churn_factors"), ("expansion_propensity", "expansion_factors"))


def has_scores(con: duckdb.DuckDBPyConnection, as_of: date) -> bool:
    """Whether marts.customer_scores holds scores of as_of: on a young warehouse the score step is skipped (not
    enough history), which leaves the mart missing or as of an earlier day."""
    if not table_exists(con, "marts", "customer_scores"):
        return False
    row = con.execute(f"SELECT EXISTS (SELECT 1 FROM {SCORES_TABLE} WHERE as_of = ?)", [as_of]).fetchone()
    return bool(row and row[0])


def missing_scores_note(con: duckdb.DuckDBPyConnection, campaign: Campaign, as_of: date) -> str | None:
    """Why the campaign selects nobody today, when its audience filters on scores the warehouse lacks for as_of."""
    if all(getattr(campaign.audience, key) is None for key, _ in SCORE_KEYS) or has_scores(con, as_of):
        return None
    return f"no scores as of {as_of.isoformat()}: the audience filters on scores, so nobody is selected"


# DuckDB's binder names the missing column: 'Referenced column "x" not found' or 'does not have a column named "x"'.
_MISSING_COLUMN = re.compile(r'column (?:named )?"([^"]+)"')


def check_where(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> None:
    """A `where:` must bind against marts.customers before it runs: a misspelt column is the marketer's typo, told
    in one line with the closest columns, not a DuckDB traceback from the middle of the selection."""
    where = campaign.audience.where
    if not where or not table_exists(con, "marts", "customers"):
        return
    # Read before the check: a failed statement aborts the caller's transaction (preview runs in one).
    columns = [str(r[0]) for r in con.execute("DESCRIBE marts.customers").fetchall()]
    try:
        con.execute(f"SELECT 1 FROM marts.customers AS c WHERE ({where}) LIMIT 0").fetchall()
    except duckdb.Error as exc:
        first = str(exc).split("\n", 1)[0]
        found = _MISSING_COLUMN.search(first)
        if found:
            column = found.group(1).rsplit(".", 1)[-1]
            problem = f"no column {column!r} in marts.customers (alias c) ({suggestion(column, columns)})"
        else:
            problem = first
        raise CampaignFileError(f"{campaign.name}.yml: key audience.where: {problem}") from None


def audience_sql(
    campaign: Campaign,
    as_of: date,
    *,
    with_context: bool = True,
    con: duckdb.DuckDBPyConnection | None = None,
) -> tuple[str, list[Any]]:
    """One row per qualifying customer with the occasion that makes its message unique, and why it matched.

    An audience on churn_risk or expansion_propensity reads the scores of as_of only (a stale day's would
    select on an old picture). Given ``con``, a day without them selects nobody, with a warning, instead of
    failing on a missing mart; without it the mart must exist.
    """
    a = campaign.audience
    if con is not None:
        check_where(con, campaign)
    q = _Sql()
    scores = ""
    if any(getattr(a, key) is not None for key, _ in SCORE_KEYS):
        note = missing_scores_note(con, campaign, as_of) if con is not None else None
        if note:
            log.warning("%s: %s", campaign.name, note)
            q.add("false")
        else:
            scores = (
                f"JOIN {SCORES_TABLE} sc ON sc.customer_id = c.customer_id AND sc.as_of = DATE '{as_of.isoformat()}'"
            )
            for key, factors in SCORE_KEYS:
                if getattr(a, key) is not None:  # the probability and the words behind it, for a reviewer
                    q.range(f"sc.{key}", key, getattr(a, key))
                    q.reasons.append(f"'{factors}_en': sc.{factors}_en, '{factors}_ja': sc.{factors}_ja")
    if a.status:
        q.add("c.status = ?", a.status, reason=("status", "c.status"))
    if a.churned_within_days:
        q.range(
            f"date_diff('day', c.churned_month, DATE '{as_of.isoformat()}')", "churned_days_ago", a.churned_within_days
        )
    q.range("c.tenure_months", "tenure_months", a.tenure_months)
    q.range("c.current_mrr", "mrr", a.mrr)
    q.range("c.plan_usage_ratio", "plan_usage_ratio", a.plan_usage_ratio)
    # Never touched is longer ago than any number of days, as the no_recent_touch signal counts it.
    q.range("c.days_since_last_touch", "days_since_last_touch", a.days_since_last_touch, null_is_infinite=True)
    if a.ranks:
        q.add("c.rank IN (SELECT unnest(?::VARCHAR[]))", a.ranks, reason=("rank", "c.rank"))
    if a.products_held:
        q.add(
            f"list_has_all({_products('c.products_held')}, ?::VARCHAR[])",
            a.products_held,
            reason=("products_held", "c.products_held"),
        )
    if a.products_not_held:
        q.add(
            f"NOT list_has_any({_products('c.products_held')}, ?::VARCHAR[])",
            a.products_not_held,
            reason=("products_not_held", _literal(a.products_not_held)),
        )
    if a.plans:
        q.add(f"list_has_any({_products('c.plans_held')}, ?::VARCHAR[])", a.plans, reason=("plans", "c.plans_held"))
    for signal in a.signals or []:
        if not signal.name.replace("_", "").isalnum():
            raise ValueError(f"signal name {signal.name!r}: use letters, digits and _")
        q.add(
            "EXISTS (SELECT 1 FROM marts.customer_signals g WHERE g.customer_id = c.customer_id AND g.signal = ? "
            "AND g.first_seen_on >= ?::DATE - ?::INTEGER)",
            signal.name,
            as_of,
            signal.within_days,
            reason=(
                f"signal_{signal.name}",
                f"(SELECT any_value(signal_detail) FROM marts.customer_signals g "
                f"WHERE g.customer_id = c.customer_id AND g.signal = {_literal(signal.name)})",
            ),
        )
    if a.where:
        q.add(f"({a.where})", reason=("where", _literal(a.where)))

    if a.renewal_within_days is not None:
        term = ""
        term_params: list[Any] = []
        if a.contract_term_months:
            term = "AND r.contract_term_months IN (SELECT unnest(?::INTEGER[]))"
            term_params = [a.contract_term_months]
        source = f"""JOIN (
            SELECT r.customer_id, min(r.renewal_on) AS renewal_on,
                   arg_min(r.days_to_renewal, r.renewal_on) AS days_to_renewal,
                   arg_min(r.product, r.renewal_on) AS product, arg_min(r.plan, r.renewal_on) AS plan,
                   arg_min(r.mrr, r.renewal_on) AS renewal_mrr, arg_min(r.currency, r.renewal_on) AS currency,
                   arg_min(r.contract_term_months, r.renewal_on) AS renewal_term
            FROM marts.subscription_renewals r
            WHERE r.days_to_renewal BETWEEN 0 AND ? {term}
            GROUP BY r.customer_id) s USING (customer_id)"""
        source_params: list[Any] = [a.renewal_within_days, *term_params]
        q.reasons.append("'renewal_on': s.renewal_on, 'days_to_renewal': s.days_to_renewal")
        if a.contract_term_months:
            q.reasons.append("'contract_term_months': s.renewal_term")
        columns = """s.renewal_on, s.days_to_renewal, s.product, s.plan, s.renewal_mrr AS mrr, s.currency,
                     s.renewal_term AS contract_term_months, strftime(s.renewal_on, '%Y-%m-%d') AS occasion"""
    else:
        source, source_params = "", []
        if a.contract_term_months:
            q.add(
                "c.contract_term_months IN (SELECT unnest(?::INTEGER[]))",
                a.contract_term_months,
                reason=("contract_term_months", "c.contract_term_months"),
            )
        # One message per customer per campaign and calendar month: a monthly campaign reaches people again
        # next month, never twice within one.
        columns = f"""NULL::DATE AS renewal_on, NULL::INTEGER AS days_to_renewal, NULL AS product, NULL AS plan,
                      c.current_mrr AS mrr, 'JPY' AS currency, c.contract_term_months,
                      '{as_of.strftime("%Y-%m")}' AS occasion"""
    reasons = "to_json({" + ", ".join(q.reasons or ["'all': true"]) + "})::VARCHAR"
    sql = f"""
        SELECT c.customer_id, c.name AS customer_name, c.owner_email, {columns},
               c.status AS customer_status, {reasons} AS reasons,
               {"to_json(c)::VARCHAR" if with_context else "NULL::VARCHAR"} AS context
        FROM marts.customers c {source} {scores}
        {"WHERE " + " AND ".join(q.where) if q.where else ""}"""
    return sql, source_params + q.params


def _contact_filter(campaign: Campaign) -> tuple[str, list[Any]]:
    if isinstance(campaign.contacts, Roles):
        return "AND ct.role IN (SELECT unnest(?::VARCHAR[]))", [campaign.contacts.roles]
    if campaign.contacts == "primary":
        return "AND ct.is_primary", []
    return "", []


def _add_owner_digests(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> None:
    """owner_policy owner_digest: each account executive gets one list of their selected accounts instead.

    One digest per owner, campaign and calendar month (its occasion); the accounts stay excluded with reason
    owner_policy, so their contacts get nothing from this campaign.
    """
    con.execute(
        f"""
        INSERT INTO _selection
        WITH owned AS (
            SELECT * FROM _selection WHERE exclusion_reason = 'owner_policy' AND variant = 'treatment'
        ),
        digests AS (
            SELECT any_value(run_id) AS run_id, any_value(as_of) AS as_of, owner_email,
                   strftime(any_value(as_of), '%Y-%m') AS occasion, count(DISTINCT customer_id) AS accounts,
                   to_json({{'campaign': ?, 'description': ?,
                              'accounts': list(DISTINCT {{'customer_id': customer_id, 'customer_name': customer_name,
                                                          'reasons': reasons::JSON}})}})::VARCHAR AS context
            FROM owned GROUP BY owner_email
        ),
        keyed AS (
            SELECT d.*, substr(sha256(? || chr(31) || 'owner:' || d.owner_email || chr(31) || d.occasion), 1, 32)
                            AS message_key
            FROM digests d
        )
        SELECT k.run_id, k.as_of, ?, 'owner_digest', NULL, NULL, 'owner:' || k.owner_email, NULL, k.owner_email,
               ?, k.owner_email, NULL, NULL, k.occasion, NULL, NULL, NULL, NULL, NULL, NULL, NULL, k.message_key,
               l.message_key IS NULL, to_json({{'accounts': k.accounts}})::VARCHAR, k.context,
               CASE WHEN l.message_key IS NOT NULL THEN 'already_sent' END
        FROM keyed k
        LEFT JOIN {LEDGER_TABLE} l ON l.message_key = k.message_key AND l.state IN {SETTLED_STATES}""",
        [campaign.name, campaign.description, campaign.name, campaign.name, campaign.locale],
    )


def ensure_recipient_tables(con: duckdb.DuckDBPyConnection) -> None:
    """ops.campaign_recipients and ops.campaign_exclusions, empty when new (the engagement marts read them)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {OPS_SCHEMA}")
    if table_exists(con, OPS_SCHEMA, "campaign_recipients"):
        columns = {r[0] for r in con.execute(f"DESCRIBE {RECIPIENTS_TABLE}").fetchall()}
        if "variant" not in columns:  # the first layout, before holdouts: keep it for audits, start anew
            con.execute(f"ALTER TABLE {RECIPIENTS_TABLE} RENAME TO campaign_recipients_v1")
    con.execute(f"CREATE TABLE IF NOT EXISTS {RECIPIENTS_TABLE} ({_COLUMNS})")
    con.execute(f"CREATE TABLE IF NOT EXISTS {EXCLUSIONS_TABLE} ({_COLUMNS}, exclusion_reason VARCHAR)")


def select_recipients(
    con: duckdb.DuckDBPyConnection, campaign: Campaign, run_id: str, as_of: date, settings: Settings | None = None
) -> Selection:
    """Write this run's selection for one campaign: recipients (treatment, holdout) and exclusions with reasons."""
    settings = settings or Settings()
    ensure_ledger(con)
    ensure_recipient_tables(con)
    for table in (RECIPIENTS_TABLE, EXCLUSIONS_TABLE):
        con.execute(f"DELETE FROM {table} WHERE run_id = ? AND campaign = ?", [run_id, campaign.name])

    # The customer's whole row (template context) is attached to recipients only, after selection: building
    # it for every excluded candidate too cost most of the time at 1M customers.
    audience, audience_params = audience_sql(campaign, as_of, with_context=False, con=con)
    contact_filter, contact_params = _contact_filter(campaign)
    suppressed = (
        f"EXISTS (SELECT 1 FROM {SUPPRESSIONS_TABLE} x WHERE x.email = k.email)"
        if table_exists(con, OPS_SCHEMA, "suppressions")
        else "false"
    )
    # Older marts may lack marketing_consent: then nothing is known beyond opt-in, i.e. 'unknown'.
    consent_column = (
        "ct.marketing_consent" if column_exists(con, "marts", "contacts", "marketing_consent") else "'unknown'"
    )
    freq = campaign.frequency
    max_emails = min(settings.frequency_max_emails, freq.max_emails if freq else settings.frequency_max_emails)
    freq_days = max(settings.frequency_days, freq.days if freq else settings.frequency_days)
    owner_excluded = campaign.owner_policy in ("exclude", "owner_digest")
    holdout_basis_points = round(campaign.holdout_percent * 100)
    # Both groups must be the same slice of the ranked audience, or the lift compares the most urgent renewals
    # with everyone: the holdout keeps the first max_recipients × h / (1 − h) of its eligible rows (rounded) by
    # the same ordering (h = the holdout fraction; h ≤ 0.5, so never a division by zero).
    holdout_cap = round(campaign.max_recipients * holdout_basis_points / (10_000 - holdout_basis_points))

    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _selection AS
        WITH audience AS ({audience}),
        variants AS (
            -- Deterministic per campaign and customer: a customer stays in its group across runs.
            SELECT *, CASE WHEN ('0x' || substr(md5(? || ':' || customer_id), 1, 8))::UBIGINT % 10000 < ?
                           THEN 'holdout' ELSE 'treatment' END AS variant
            FROM audience
        ),
        candidates AS (
            SELECT v.*, ct.contact_id, ct.contact_name, ct.email, coalesce(ct.locale, ?) AS locale,
                   ct.is_marketing_opted_in,
                   CASE WHEN ct.is_marketing_opted_in THEN 'consent'
                        WHEN ? = 'relationship' AND {consent_column} <> 'opted_out'
                             AND v.customer_status IN ('active', 'churned')
                            THEN 'relationship'
                   END AS lawful_basis
            FROM variants v
            LEFT JOIN marts.contacts ct ON ct.customer_id = v.customer_id {contact_filter}
        ),
        keyed AS (
            -- The idempotency key of one message: same campaign, contact and occasion never get two.
            SELECT *,
                   CASE WHEN contact_id IS NOT NULL
                        THEN substr(sha256(? || chr(31) || contact_id || chr(31) || occasion), 1, 32) END
                       AS message_key
            FROM candidates
        ),
        recent AS (
            SELECT email, count(*) AS sends FROM {LEDGER_TABLE}
            WHERE state IN {SETTLED_STATES} AND claimed_at >= timezone('UTC', now()) - to_days(?::INTEGER)
            GROUP BY email
        ),
        held_out AS (
            -- Holdout keys of this campaign's other runs that sent: the holdout moves on to the next contacts
            -- in line as the treatment does past already_sent. A run that sent nothing (held, killed, failed
            -- before sending) consumed neither group; a re-run of this run_id replaces its own rows instead.
            SELECT DISTINCT message_key FROM {RECIPIENTS_TABLE}
            WHERE campaign = ? AND variant = 'holdout' AND run_id <> ?
              AND run_id IN (SELECT run_id FROM {LEDGER_TABLE} WHERE campaign = ? AND state IN {SETTLED_STATES})
        ),
        reasoned AS (
            SELECT k.*,
                   coalesce(l.run_id = ?, false) AS sent_by_this_run,
                   CASE
                     -- A re-run of this run_id keeps what it sent itself: selected again (claim leaves it alone)
                     -- and first in line for max_recipients, so retrying a run never mails past its cap.
                     WHEN sent_by_this_run THEN NULL
                     WHEN k.contact_id IS NULL THEN 'no_contact'
                     WHEN NOT regexp_matches(coalesce(k.email, ''), ?) THEN 'invalid_email'
                     WHEN {suppressed} THEN 'suppressed'
                     WHEN k.lawful_basis IS NULL THEN 'no_marketing_consent'
                     WHEN ? AND k.owner_email IS NOT NULL THEN 'owner_policy'
                     WHEN row_number() OVER (PARTITION BY k.email
                                             ORDER BY k.is_marketing_opted_in DESC NULLS LAST, k.customer_id,
                                                      k.contact_id) > 1 THEN 'duplicate_email'
                     WHEN l.message_key IS NOT NULL THEN 'already_sent'
                     WHEN k.variant = 'holdout' AND h.message_key IS NOT NULL THEN 'already_held_out'
                     -- for the holdout too: a contact treatment could not have mailed is no comparison
                     WHEN coalesce(r.sends, 0) >= ? THEN 'frequency_cap'
                   END AS reason
            FROM keyed k
            LEFT JOIN {LEDGER_TABLE} l ON l.message_key = k.message_key AND l.state IN {SETTLED_STATES}
            LEFT JOIN recent r ON r.email = k.email
            LEFT JOIN held_out h ON h.message_key = k.message_key
        ),
        capped AS (
            SELECT *,
                   CASE WHEN reason IS NULL
                         AND row_number() OVER (PARTITION BY reason IS NULL, variant
                                                ORDER BY sent_by_this_run DESC, days_to_renewal NULLS LAST,
                                                         customer_id, contact_id)
                             > CASE variant WHEN 'treatment' THEN ? ELSE ? END
                        THEN 'over_cap' ELSE reason END AS exclusion_reason
            FROM reasoned
        )
        SELECT ?::VARCHAR AS run_id, ?::DATE AS as_of, ?::VARCHAR AS campaign, variant, customer_id, customer_name,
               contact_id, contact_name, email, locale, owner_email,
               CASE WHEN ? = 'cc_owner' THEN owner_email END AS cc_email,
               CASE WHEN ? = 'send_from_owner' THEN owner_email END AS from_email,
               occasion, renewal_on, days_to_renewal, product, plan, mrr, currency, contract_term_months,
               message_key, exclusion_reason IS NULL AND variant = 'treatment' AS is_selected,
               json_merge_patch(reasons, json_object('lawful_basis', lawful_basis))::VARCHAR AS reasons, context,
               exclusion_reason
        FROM capped
        """,
        [
            *audience_params,
            campaign.name,
            holdout_basis_points,
            campaign.locale,
            settings.lawful_basis,
            *contact_params,
            campaign.name,
            freq_days,
            campaign.name,
            run_id,
            campaign.name,
            run_id,
            EMAIL_PATTERN,
            owner_excluded,
            max_emails,
            campaign.max_recipients,
            holdout_cap,
            run_id,
            as_of,
            campaign.name,
            campaign.owner_policy,
            campaign.owner_policy,
        ],
    )
    if campaign.owner_policy == "owner_digest":
        _add_owner_digests(con, campaign)
    con.execute(
        f"""INSERT INTO {RECIPIENTS_TABLE}
            SELECT s.* EXCLUDE (exclusion_reason, context), coalesce(s.context, to_json(c)::VARCHAR)
            FROM _selection s LEFT JOIN marts.customers c ON c.customer_id = s.customer_id
            WHERE s.exclusion_reason IS NULL"""
    )
    con.execute(f"INSERT INTO {EXCLUSIONS_TABLE} SELECT * FROM _selection WHERE exclusion_reason IS NOT NULL")
    rows = con.execute("SELECT coalesce(exclusion_reason, variant), count(*) FROM _selection GROUP BY 1").fetchall()
    con.execute("DROP TABLE _selection")
    counts = {str(r[0]): int(r[1]) for r in rows}
    treatment = counts.pop("treatment", 0) + counts.pop("owner_digest", 0)
    note = missing_scores_note(con, campaign, as_of) or ""
    return Selection(campaign.name, run_id, treatment, counts.pop("holdout", 0), counts, note)
