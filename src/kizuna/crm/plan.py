"""What kizuna wants the CRM to show, read from the warehouse: each account's kizuna fields and today's tasks.

Read-only: the plan is computed from marts.customers, marts.customer_signals, marts.customer_scores,
ops.call_list, ops.campaign_recipients and marts.engagement_csqls as the daily run left them. The task key rule
(docs/crm.md): a call-list row's reason is (customer, call-list campaign); a CSQL's is the CSQL itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from kizuna.core.calendar import non_business_reason
from kizuna.core.connection import Connection
from kizuna.core.settings import Settings
from kizuna.core.sql_dialect import dialect_of
from kizuna.core.warehouse import table_exists
from kizuna.crm.target import FieldSpec, Value
from kizuna.scoring.next_actions import SIGNAL_COLUMNS, customer_next_actions

SCORES_TABLE = "marts.customer_scores"  # written by the score step (kizuna.scoring), read like a mart
CSQL_LOOKBACK_DAYS = 7  # CSQLs created this many days before the as-of date still get a task on the first sync
RANK_PRIORITY: dict[str | None, Literal["high", "medium", "low"]] = {"A": "high", "B": "medium", "C": "low"}

ACCOUNT_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("kizuna_rank", "kizuna rank", "enumeration", ("A", "B", "C"), "A/B/C: revenue, growth, relationship."),
    FieldSpec("kizuna_rank_components", "kizuna rank components", "string", (), "The axes behind the rank."),
    FieldSpec("kizuna_health_score", "kizuna health score", "number", (), "0-100."),
    FieldSpec("kizuna_churn_risk", "kizuna churn risk", "number", (), "Probability of churn within 90 days."),
    FieldSpec("kizuna_churn_reasons", "kizuna churn reasons", "text", (), "What raises the churn risk most."),
    FieldSpec("kizuna_expansion_propensity", "kizuna expansion propensity", "number", (), "Within 90 days."),
    FieldSpec("kizuna_expansion_reasons", "kizuna expansion reasons", "text", (), "What raises it most."),
    FieldSpec("kizuna_open_signals", "kizuna open signals", "string", (), "Active signals, comma-separated."),
    FieldSpec(
        "kizuna_next_action",
        "kizuna next action",
        "text",
        (),
        "From today's call list, else from the most urgent signal.",
    ),
    FieldSpec("kizuna_last_touch", "kizuna last touch", "date", (), "The last day a kizuna campaign emailed them."),
)


@dataclass(frozen=True)
class AccountPlan:
    customer_id: str
    owner_email: str | None
    values: dict[str, Value]

    @property
    def values_hash(self) -> str:
        return values_hash(self.values)


@dataclass(frozen=True)
class TaskPlan:
    """A task kizuna wants; `reason` is what recurs (docs/crm.md), `key` this occurrence's idempotency key."""

    key: str
    reason: str
    customer_id: str
    owner_email: str | None  # None: the inside-sales queue
    subject: str
    body: str
    due_date: date
    priority: Literal["high", "medium", "low"]


@dataclass
class Plan:
    as_of: date
    accounts: list[AccountPlan] = field(default_factory=list)
    tasks: list[TaskPlan] = field(default_factory=list)


def values_hash(values: dict[str, Value]) -> str:
    return hashlib.sha256(values_json(values).encode()).hexdigest()[:32]


def values_json(values: dict[str, Value]) -> str:
    return json.dumps({k: encode(v) for k, v in values.items()}, sort_keys=True, ensure_ascii=False)


def encode(value: Value) -> str | float | int | None:
    return value.isoformat() if isinstance(value, date) else value


def add_business_days(day: date, days: int) -> date:
    """`days` Japanese business days after `day` (weekends and national holidays skipped); 0 gives `day`."""
    while days > 0:
        day += timedelta(days=1)
        if non_business_reason(day) is None:
            days -= 1
    return day


def _exists(con: Connection, table: str) -> bool:
    schema, _, name = table.partition(".")
    return table_exists(con, schema, name)


def build_plan(con: Connection, settings: Settings, as_of: date) -> Plan:
    """The desired state on `as_of`: active customers' kizuna fields and the tasks of today's call list and CSQLs."""
    return Plan(as_of, _accounts(con, as_of), _call_tasks(con, settings, as_of) + _csql_tasks(con, settings, as_of))


def _accounts(con: Connection, as_of: date) -> list[AccountPlan]:
    scores = _exists(con, SCORES_TABLE)
    calls = _exists(con, "ops.call_list")
    dialect = dialect_of(con)
    emails = _exists(con, "ops.campaign_recipients")
    score_cols = (
        "sc.churn_risk, sc.churn_factors_ja, sc.expansion_propensity, sc.expansion_factors_ja"
        if scores
        else "NULL, NULL, NULL, NULL"
    )
    score_join = (
        f"LEFT JOIN {SCORES_TABLE} sc ON sc.customer_id = c.customer_id AND sc.as_of = $as_of" if scores else ""
    )
    next_action = (
        f"(SELECT {dialect.last_by('l.next_action', 'l.run_id')} FROM ops.call_list l "
        "WHERE l.customer_id = c.customer_id AND l.as_of = $as_of)"
        if calls
        else "NULL"
    )
    last_touch = (
        "(SELECT max(r.as_of) FROM ops.campaign_recipients r WHERE r.customer_id = c.customer_id "
        "AND r.is_selected AND r.variant IS DISTINCT FROM 'holdout' AND r.as_of <= $as_of)"
        if emails
        else "NULL"
    )
    sql = f"""
        SELECT c.customer_id, c.owner_email, c.rank, c.revenue_rank, c.growth_potential_score,
               c.relationship_score, c.health_score, {score_cols},
               (SELECT string_agg(g.signal, ', ' ORDER BY {dialect.byte_order("g.signal")}) FROM marts.customer_signals g
                 WHERE g.customer_id = c.customer_id) AS signals,
               {next_action} AS next_action, {last_touch} AS last_touch
        FROM marts.customers c {score_join}
        WHERE c.status = 'active'
        ORDER BY c.customer_id
        """
    rows = con.execute(sql, {"as_of": as_of} if "$as_of" in sql else {}).fetchall()
    advised = _signal_actions(con)
    plans = []
    for r in rows:
        (customer_id, owner, rank, revenue, growth, relationship, health) = r[:7]
        churn, churn_why, expansion, expansion_why, signals, action, touched = r[7:]
        components = f"revenue {revenue or '-'} / growth {_num(growth)} / relationship {_num(relationship)}"
        values: dict[str, Value] = {
            "kizuna_rank": rank,
            "kizuna_rank_components": components,
            "kizuna_health_score": _round(health, 1),
            "kizuna_churn_risk": _round(churn, 3),
            "kizuna_churn_reasons": churn_why or None,
            "kizuna_expansion_propensity": _round(expansion, 3),
            "kizuna_expansion_reasons": expansion_why or None,
            "kizuna_open_signals": signals,
            "kizuna_next_action": action or advised.get(str(customer_id)),
            "kizuna_last_touch": touched,
        }
        plans.append(AccountPlan(str(customer_id), owner, values))
    return plans


def _signal_actions(con: Connection) -> dict[str, str]:
    """Each signalled customer's next action from its most urgent signal (scoring/next_actions.yml), for the
    accounts today's call list leaves out: the field then says what to do whenever a rep opens the account."""
    if not _exists(con, "marts.customer_signals"):
        return {}
    signals = con.execute(f"SELECT {', '.join(SIGNAL_COLUMNS)} FROM marts.customer_signals").df()
    actions = customer_next_actions(signals)
    return dict(zip(actions["customer_id"].astype(str), actions["next_action_ja"], strict=True))


def _num(value: object) -> str:
    return "-" if value is None else f"{float(str(value)):.0f}"


def _round(value: object, digits: int) -> float | None:
    return None if value is None else round(float(str(value)), digits)


def _owner(settings: Settings, account_owner: str | None) -> str | None:
    """The owner policy: the account's owner when the policy allows and it has one; None = the queue."""
    return account_owner if settings.crm_owner_policy == "account_owner" and account_owner else None


def _due(settings: Settings, as_of: date, rank: str | None) -> date:
    days = settings.crm_sla_days.get(rank or "", max(settings.crm_sla_days.values(), default=5))
    return add_business_days(as_of, days)


def _link(settings: Settings, customer_id: str) -> str:
    return settings.crm_customer_url.replace("{customer_id}", customer_id)


def _json_text(text: str) -> str:
    """JSON text in one spacing (DuckDB's, compact), whichever engine wrote it, so a task reads the same on both."""
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))  # as DuckDB writes it
    except ValueError:
        return text


def _call_tasks(con: Connection, settings: Settings, as_of: date) -> list[TaskPlan]:
    if not _exists(con, "ops.call_list"):
        return []
    rows = con.execute(
        """
        SELECT customer_id, customer_name, campaign, owner_email, rank, signals, hypothesis, next_action, reasons
        FROM (
            SELECT *, row_number() OVER (PARTITION BY customer_id, campaign ORDER BY run_id DESC, priority) AS n
            FROM ops.call_list WHERE as_of = ? AND customer_id IS NOT NULL
        ) AS latest
        WHERE n = 1
        ORDER BY customer_id, campaign
        """,
        [as_of],
    ).fetchall()
    tasks = []
    for customer_id, name, campaign, owner, rank, signals, hypothesis, action, reasons in rows:
        reason = f"call:{campaign}:{customer_id}"
        lines = [f"{label}: {text}" for label, text in (("仮説", hypothesis), ("シグナル", signals)) if text]
        lines += [f"理由: {_json_text(reasons)}"] if reasons else []
        lines.append(f"kizuna: {_link(settings, customer_id)}")
        tasks.append(
            TaskPlan(
                key=f"{reason}:{as_of.isoformat()}",
                reason=reason,
                customer_id=customer_id,
                owner_email=_owner(settings, owner),
                subject=f"[kizuna] {name or customer_id}: {action or '連絡する'}",
                body="\n".join(lines),
                due_date=_due(settings, as_of, rank),
                priority=RANK_PRIORITY.get(rank, "low"),
            )
        )
    return tasks


def _csql_tasks(con: Connection, settings: Settings, as_of: date) -> list[TaskPlan]:
    if not _exists(con, "marts.engagement_csqls"):
        return []
    rows = con.execute(
        """
        SELECT q.csql_id, q.customer_id, coalesce(q.customer_name, c.name), q.intent, q.link_name, q.campaign,
               q.clicks, q.is_for_inside_sales_queue, c.owner_email, c.rank
        FROM marts.engagement_csqls q LEFT JOIN marts.customers c USING (customer_id)
        WHERE q.is_counted AND q.created_on <= ? AND q.created_on > ?
        ORDER BY q.csql_id
        """,
        [as_of, as_of - timedelta(days=CSQL_LOOKBACK_DAYS)],
    ).fetchall()
    tasks = []
    for csql_id, customer_id, name, intent, link, campaign, clicks, for_queue, owner, rank in rows:
        body = (
            f"CSQL ({intent}): {link or '-'} in {campaign or '-'}, {clicks} click(s).\n"
            f"kizuna: {_link(settings, customer_id)}"
        )
        tasks.append(
            TaskPlan(
                key=f"csql:{csql_id}",
                reason=f"csql:{csql_id}",
                customer_id=customer_id,
                owner_email=None if for_queue else _owner(settings, owner),
                subject=f"[kizuna] CSQL {intent}: {name or customer_id}",
                body=body,
                due_date=_due(settings, as_of, rank),
                priority=RANK_PRIORITY.get(rank, "medium"),
            )
        )
    return tasks
