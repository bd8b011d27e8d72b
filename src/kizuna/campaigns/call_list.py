"""The daily call list: accounts a rep should contact today, why, and what to do — no email is sent."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

from kizuna.campaigns.audience import SCORES_TABLE, audience_sql, has_scores, missing_scores_note
from kizuna.campaigns.spec import Campaign
from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.sql_dialect import dialect_of
from kizuna.core.warehouse import table_exists
from kizuna.reporting.export import neutralise
from kizuna.reporting.summary import CampaignSummary
from kizuna.scoring.explain import SEPARATOR
from kizuna.scoring.next_actions import SIGNAL_COLUMNS, customer_next_actions

CALL_LIST_TABLE = ops.CALL_LIST.name
# An intent CSQL (marts.engagement_csqls: a click on a pricing, upgrade or contact link) this recent puts its
# customer first, with "intent:<kind>" at the head of its signals.
FRESH_INTENT_DAYS = 7
COLUMNS = (
    "run_id",
    "as_of",
    "campaign",
    "priority",
    "owner_email",
    "customer_id",
    "customer_name",
    "rank",
    "mrr",
    "signals",
    "days_since_last_touch",
    "hypothesis",
    "next_action",
    "reasons",
)


def build_call_list(con: Connection, campaign: Campaign, run_id: str, as_of: date) -> CampaignSummary:
    """Write today's list to ops.call_list: fresh intent CSQLs first, then follow-ups due, then rank, churn risk
    (when today's scores exist), signals, days since the last touch (never touched first: longer ago than any
    number of days); each customer's next action is its own where it has an open signal (_own_next_actions)."""
    # Rank and days since the last touch as columns: the customer's whole row as JSON (the context, which the
    # list never shows) cost most of the list's time at 1M customers.
    audience, params = audience_sql(
        campaign, as_of, with_context=False, con=con, customer_columns=("rank", "days_since_last_touch")
    )
    latest_intent = dialect_of(con).last_by("e.intent", "e.created_at")
    intent = (
        f"(SELECT {latest_intent} FROM marts.engagement_csqls e WHERE e.customer_id = a.customer_id "
        f"AND e.is_counted AND e.created_on BETWEEN DATE '{as_of.isoformat()}' - {FRESH_INTENT_DAYS} "
        f"AND DATE '{as_of.isoformat()}')"
        if table_exists(con, "marts", "engagement_csqls")
        else "NULL"
    )
    signal_count, listed_signals, follow_up = _signal_sql(table_exists(con, "marts", "customer_signals"))
    # An at-risk account before a calm one of the same rank; its top churn factor (in the campaign's language)
    # joins the signals, e.g. "churn risk 72%: usage down 42% against its 3-month average". Scores of an
    # earlier day are not used: without today's, the order is rank, signals, days since the last touch.
    if has_scores(con, as_of):
        scores = f"LEFT JOIN {SCORES_TABLE} sc ON sc.customer_id = a.customer_id AND sc.as_of = DATE '{as_of}'"
        churn_risk = "sc.churn_risk"
        top_factor = f"split_part(sc.churn_factors_{campaign.locale}, '{SEPARATOR[campaign.locale]}', 1)"
    else:
        scores, churn_risk, top_factor = "", "NULL::DOUBLE PRECISION", "NULL::VARCHAR"
    # customer_id last: the order is total, so the first max_recipients rows and their priorities are those of
    # numbering the whole audience.
    order = (
        "intent IS NULL, NOT is_follow_up_due, coalesce(rank, 'Z'), churn_risk DESC NULLS LAST, "
        "signal_count DESC, days_since_last_touch DESC NULLS FIRST, customer_id"
    )
    ops.ensure(con, ops.CALL_LIST)
    con.execute(f"DELETE FROM {CALL_LIST_TABLE} WHERE run_id = ? AND campaign = ?", [run_id, campaign.name])
    con.execute(
        f"""INSERT INTO {CALL_LIST_TABLE}
            WITH audience AS ({audience}),
            enriched AS (
                SELECT a.*, {signal_count} AS signal_count, {intent} AS intent, {follow_up} AS is_follow_up_due,
                       a.customer_rank AS rank, CAST(a.customer_days_since_last_touch AS INTEGER)
                           AS days_since_last_touch,
                       {churn_risk} AS churn_risk, {top_factor} AS top_factor
                FROM audience a {scores}
            ),
            listed AS (SELECT * FROM enriched ORDER BY {order} LIMIT ?),
            listed_signals AS ({listed_signals}),
            described AS (
                SELECT r.*, s.signals,
                       'churn risk ' || round(100 * r.churn_risk)::INTEGER || '%'
                           || coalesce(': ' || nullif(r.top_factor, ''), '') AS churn_text
                FROM listed r LEFT JOIN listed_signals s ON s.customer_id = r.customer_id
            )
            SELECT ?, ?::DATE, ?, row_number() OVER (ORDER BY {order}),
                   coalesce(owner_email, '(inside sales queue)'), customer_id, customer_name, rank, mrr,
                   nullif(concat_ws(', ', 'intent:' || intent, signals, churn_text), ''),
                   days_since_last_touch, ?, ?, reasons
            FROM described
            ORDER BY 4""",
        [*params, campaign.max_recipients, run_id, as_of, campaign.name, campaign.hypothesis, campaign.next_action],
    )
    _own_next_actions(con, campaign, run_id)
    row = con.execute(
        f"SELECT count(*) FROM {CALL_LIST_TABLE} WHERE run_id = ? AND campaign = ?", [run_id, campaign.name]
    ).fetchone()
    count = int(row[0]) if row else 0
    missing = missing_scores_note(con, campaign, as_of)
    note = f"{count} accounts to call" + (f"; {missing}" if missing else "")
    return CampaignSummary(campaign.name, count, {}, 0, 0, status="call_list", note=note)


def _signal_sql(has_signals: bool) -> tuple[str, str, str]:
    """The call list's signal expressions over audience row `a`: how many signals, the listed rows' signal names
    (a CTE body over `listed`), and whether a follow-up is due; constants when marts.customer_signals is missing."""
    # The order needs only how many signals a customer has; their names are joined for the listed rows alone
    # (an ordered string_agg over every customer's signals cost most of the list's time at 1M customers).
    signal_count = (
        "(SELECT count(g.signal) FROM marts.customer_signals g WHERE g.customer_id = a.customer_id)"
        if has_signals
        else "0"
    )
    listed_signals = (
        "SELECT g.customer_id, string_agg(g.signal, ', ' ORDER BY g.signal) AS signals "
        "FROM marts.customer_signals g WHERE g.customer_id IN (SELECT customer_id FROM listed) GROUP BY g.customer_id"
        if has_signals
        else "SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS signals"
    )
    # A follow-up due (a rep's promise to come back, doc block follow_up_due) comes right after fresh intent.
    follow_up = (
        "EXISTS (SELECT 1 FROM marts.customer_signals g WHERE g.customer_id = a.customer_id "
        "AND g.signal = 'follow_up_due')"
        if has_signals
        else "false"
    )
    return signal_count, listed_signals, follow_up


def _own_next_actions(con: Connection, campaign: Campaign, run_id: str) -> None:
    """Each listed customer with an open signal gets its own next action (its most urgent signal's, in the
    campaign's language: kizuna.scoring.next_actions); the others keep the campaign's next_action."""
    if not table_exists(con, "marts", "customer_signals"):
        return
    signals = con.execute(
        f"SELECT {', '.join(f'g.{c}' for c in SIGNAL_COLUMNS)} FROM marts.customer_signals g "
        f"WHERE g.customer_id IN (SELECT customer_id FROM {CALL_LIST_TABLE} WHERE run_id = ? AND campaign = ?)",
        [run_id, campaign.name],
    ).df()
    own = customer_next_actions(signals)
    if not len(own):
        return
    con.register("call_list_own_actions", own)
    try:
        con.execute(
            f"""UPDATE {CALL_LIST_TABLE} AS l SET next_action = o.next_action_{campaign.locale}
                FROM call_list_own_actions o
                WHERE l.customer_id = o.customer_id AND l.run_id = ? AND l.campaign = ?""",
            [run_id, campaign.name],
        )
    finally:
        con.unregister("call_list_own_actions")


def export_call_list_csv(con: Connection, run_id: str, campaign: str, out: Path) -> Path:
    """The list as a CSV (UTF-8 with BOM, so Japanese Excel opens it), spreadsheet formulas neutralised."""
    rows = con.execute(
        f"SELECT {', '.join(COLUMNS)} FROM {CALL_LIST_TABLE} WHERE run_id = ? AND campaign = ? ORDER BY priority",
        [run_id, campaign],
    ).fetchall()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows([[neutralise(v) if isinstance(v, str) else v for v in r] for r in rows])
    return out
