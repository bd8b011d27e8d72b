"""Who a campaign's audience is: SQL over the marts to one row per qualifying customer, with why it matched."""

from __future__ import annotations

import logging
import re
from datetime import date
from typing import Any

from kizuna.campaigns.spec import Audience, Campaign, CampaignFileError, suggestion
from kizuna.core.connection import Connection, WarehouseError
from kizuna.core.sql_dialect import Dialect, dialect_of
from kizuna.core.warehouse import table_exists
from kizuna.sources.fx import DEFAULT_REPORTING_CURRENCY

log = logging.getLogger(__name__)

SCORES_TABLE = "marts.customer_scores"


class _Sql:
    """Collects predicates with their parameters, and the JSON 'reasons' that explain each match: (key, SQL)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.where: list[str] = []
        self.params: list[Any] = []
        self.reasons: list[tuple[str, str]] = []

    def add(self, predicate: str, *params: Any, reason: tuple[str, str] | None = None) -> None:
        self.where.append(predicate)
        self.params += params
        if reason:
            self.reasons.append(reason)

    def range(self, column: str, key: str, bounds: Any, *, null_is_infinite: bool = False) -> None:
        """min/max bounds on a column; with null_is_infinite a null lies beyond every number (passes any min,
        fails any max), e.g. days since a touch that never happened. Otherwise a null matches no bound."""
        if bounds is None:
            return
        if bounds.min is not None:
            self.add(f"({column} >= ? OR {column} IS NULL)" if null_is_infinite else f"{column} >= ?", bounds.min)
        if bounds.max is not None:
            self.add(f"{column} <= ?", bounds.max)
        self.reasons.append((key, column))


def _literal(value: str | list[str]) -> str:
    """A SQL literal for text shown in the reasons JSON (reasons are built before the parameters bind)."""
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(_literal(v) for v in value) + "]"  # a list on DuckDB, an array on PostgreSQL
    return "'" + value.replace("'", "''") + "'"


# Audience keys read from marts.customer_scores, each with the column prefix of its plain-words factors.
SCORE_KEYS = (("churn_risk", "churn_factors"), ("expansion_propensity", "expansion_factors"))


def has_scores(con: Connection, as_of: date) -> bool:
    """Whether marts.customer_scores holds scores of as_of: on a young warehouse the score step is skipped (not
    enough history), which leaves the mart missing or as of an earlier day."""
    if not table_exists(con, "marts", "customer_scores"):
        return False
    row = con.execute(f"SELECT EXISTS (SELECT 1 FROM {SCORES_TABLE} WHERE as_of = ?)", [as_of]).fetchone()
    return bool(row and row[0])


def missing_scores_note(con: Connection, campaign: Campaign, as_of: date) -> str | None:
    """Why the campaign selects nobody today, when its audience filters on scores the warehouse lacks for as_of."""
    if all(getattr(campaign.audience, key) is None for key, _ in SCORE_KEYS) or has_scores(con, as_of):
        return None
    return f"no scores as of {as_of.isoformat()}: the audience filters on scores, so nobody is selected"


# The engine names the missing column: DuckDB 'Referenced column "x" not found' or 'does not have a column named
# "x"', PostgreSQL 'column c.x does not exist'.
_MISSING_COLUMN = re.compile(r'column (?:named )?"([^"]+)"|column ([\w.]+) does not exist')


def check_where(con: Connection, campaign: Campaign) -> None:
    """A `where:` must bind against marts.customers before it runs: a misspelt column is the marketer's typo, told
    in one line with the closest columns, not a DuckDB traceback from the middle of the selection."""
    where = campaign.audience.where
    if not where or not table_exists(con, "marts", "customers"):
        return
    # Read before the check: a failed statement aborts the caller's transaction (preview runs in one).
    columns = [
        str(r[0])
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' "
            "AND table_name = 'customers' ORDER BY ordinal_position"
        ).fetchall()
    ]
    try:
        con.execute(f"SELECT 1 FROM marts.customers AS c WHERE ({where}) LIMIT 0").fetchall()
    except WarehouseError as exc:
        first = str(exc).split("\n", 1)[0]
        found = _MISSING_COLUMN.search(first)
        if found:
            column = (found.group(1) or found.group(2)).rsplit(".", 1)[-1]
            problem = f"no column {column!r} in marts.customers (alias c) ({suggestion(column, columns)})"
        else:
            problem = first
        raise CampaignFileError(f"{campaign.name}.yml: key audience.where: {problem}") from None


def audience_sql(
    campaign: Campaign,
    as_of: date,
    *,
    with_context: bool = True,
    con: Connection | None = None,
    currency: str = DEFAULT_REPORTING_CURRENCY,
    customer_columns: tuple[str, ...] = (),
) -> tuple[str, list[Any]]:
    """One row per qualifying customer with the occasion that makes its message unique, and why it matched.

    ``customer_columns`` are marts.customers columns to add as they are, named customer_<column>: cheaper than
    reading them back out of the context JSON, whose to_json of the whole row costs most at 1M customers.

    ``currency`` is the reporting currency (dbt var reporting_currency), the one marts.customers' MRR is in: a
    calendar-month occasion's `mrr` is stated in it.

    An audience on churn_risk or expansion_propensity reads the scores of as_of only (a stale day's would
    select on an old picture). Given ``con``, a day without them selects nobody, with a warning, instead of
    failing on a missing mart; without it the mart must exist.
    """
    a = campaign.audience
    if con is not None:
        check_where(con, campaign)
    q = _Sql(dialect_of(con))
    scores = _score_filters(q, campaign, as_of, con)
    _customer_filters(q, a, as_of)
    source, source_params, columns = _occasion(q, a, as_of, currency)
    reasons = q.dialect.json_object(q.reasons or [("all", "true")])
    extra = "".join(f"c.{name} AS customer_{name}, " for name in customer_columns if name.isidentifier())
    sql = f"""
        SELECT c.customer_id, c.name AS customer_name, c.owner_email, {columns}, {extra}
               c.status AS customer_status, {reasons} AS reasons,
               {q.dialect.row_json("c") if with_context else "NULL::VARCHAR"} AS context
        FROM marts.customers c {source} {scores}
        {"WHERE " + " AND ".join(q.where) if q.where else ""}"""
    return sql, source_params + q.params


def _score_filters(q: _Sql, campaign: Campaign, as_of: date, con: Connection | None) -> str:
    """The filters on today's scores, and the join to them ('' when the audience reads no score)."""
    a = campaign.audience
    if all(getattr(a, key) is None for key, _ in SCORE_KEYS):
        return ""
    note = missing_scores_note(con, campaign, as_of) if con is not None else None
    if note:
        log.warning("%s: %s", campaign.name, note)
        q.add("false")
        return ""
    for key, factors in SCORE_KEYS:
        if getattr(a, key) is not None:  # the probability and the words behind it, for a reviewer
            q.range(f"sc.{key}", key, getattr(a, key))
            q.reasons += [(f"{factors}_en", f"sc.{factors}_en"), (f"{factors}_ja", f"sc.{factors}_ja")]
    return f"JOIN {SCORES_TABLE} sc ON sc.customer_id = c.customer_id AND sc.as_of = DATE '{as_of.isoformat()}'"


def _customer_filters(q: _Sql, a: Audience, as_of: date) -> None:
    """The filters on marts.customers (and its signals), in the order the audience keys are documented."""
    if a.status:
        q.add("c.status = ?", a.status, reason=("status", "c.status"))
    if a.churned_within_days:
        q.range(f"(DATE '{as_of.isoformat()}' - c.churned_month)", "churned_days_ago", a.churned_within_days)
    q.range("c.tenure_months", "tenure_months", a.tenure_months)
    q.range("c.current_mrr", "mrr", a.mrr)
    q.range("c.plan_usage_ratio", "plan_usage_ratio", a.plan_usage_ratio)
    # Never touched is longer ago than any number of days, as the no_recent_touch signal counts it.
    q.range("c.days_since_last_touch", "days_since_last_touch", a.days_since_last_touch, null_is_infinite=True)
    if a.ranks:
        q.add("c.rank IN (SELECT unnest(?::VARCHAR[]))", a.ranks, reason=("rank", "c.rank"))
    if a.products_held:
        q.add(
            f"{q.dialect.text_items('c.products_held')} @> ?::VARCHAR[]",
            a.products_held,
            reason=("products_held", "c.products_held"),
        )
    if a.products_not_held:
        q.add(
            f"NOT ({q.dialect.text_items('c.products_held')} && ?::VARCHAR[])",
            a.products_not_held,
            reason=("products_not_held", _literal(a.products_not_held)),
        )
    if a.plans:
        q.add(f"{q.dialect.text_items('c.plans_held')} && ?::VARCHAR[]", a.plans, reason=("plans", "c.plans_held"))
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
                f"(SELECT min(signal_detail) FROM marts.customer_signals g "
                f"WHERE g.customer_id = c.customer_id AND g.signal = {_literal(signal.name)})",
            ),
        )
    if a.where:
        q.add(f"({a.where})", reason=("where", _literal(a.where)))


def _occasion(q: _Sql, a: Audience, as_of: date, currency: str) -> tuple[str, list[Any], str]:
    """The join, its parameters and the columns that give each customer its occasion: the next renewal within
    renewal_within_days, else the calendar month."""
    if a.renewal_within_days is not None:
        term = ""
        term_params: list[Any] = []
        if a.contract_term_months:
            term = "AND r.contract_term_months IN (SELECT unnest(?::INTEGER[]))"
            term_params = [a.contract_term_months]
        first = q.dialect.first_by
        source = f"""JOIN (
            SELECT r.customer_id, min(r.renewal_on) AS renewal_on,
                   {first("r.days_to_renewal", "r.renewal_on")} AS days_to_renewal,
                   {first("r.product", "r.renewal_on")} AS product, {first("r.plan", "r.renewal_on")} AS plan,
                   {first("r.mrr", "r.renewal_on")} AS renewal_mrr, {first("r.currency", "r.renewal_on")} AS currency,
                   {first("r.contract_term_months", "r.renewal_on")} AS renewal_term
            FROM marts.subscription_renewals r
            WHERE r.days_to_renewal BETWEEN 0 AND ? {term}
            GROUP BY r.customer_id) s USING (customer_id)"""
        source_params: list[Any] = [a.renewal_within_days, *term_params]
        q.reasons += [("renewal_on", "s.renewal_on"), ("days_to_renewal", "s.days_to_renewal")]
        if a.contract_term_months:
            q.reasons.append(("contract_term_months", "s.renewal_term"))
        columns = """s.renewal_on, s.days_to_renewal, s.product, s.plan, s.renewal_mrr AS mrr, s.currency,
                     s.renewal_term AS contract_term_months, CAST(s.renewal_on AS VARCHAR) AS occasion"""
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
        columns = f"""NULL::DATE AS renewal_on, NULL::INTEGER AS days_to_renewal, NULL::VARCHAR AS product,
                      NULL::VARCHAR AS plan,
                      c.current_mrr AS mrr, {_literal(currency)} AS currency, c.contract_term_months,
                      '{as_of.strftime("%Y-%m")}' AS occasion"""
    return source, source_params, columns
