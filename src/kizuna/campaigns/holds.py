"""Campaign holds: a run that needs a person's approval before anything is sent, and its decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import duckdb

from kizuna.warehouse import OPS_SCHEMA

HOLDS_TABLE = f"{OPS_SCHEMA}.campaign_holds"
Decision = Literal["approved", "rejected"]


@dataclass(frozen=True)
class Hold:
    run_id: str
    campaign: str
    reason: str
    selected: int
    previous_selected: int | None
    status: str  # waiting | approved | rejected


class HoldError(ValueError):
    """No such hold, or it was already decided."""


def ensure_holds(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {OPS_SCHEMA}")
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {HOLDS_TABLE} (
            run_id VARCHAR NOT NULL, campaign VARCHAR NOT NULL, reason VARCHAR NOT NULL,
            selected BIGINT NOT NULL, previous_selected BIGINT,
            status VARCHAR NOT NULL CHECK (status IN ('waiting', 'approved', 'rejected')),
            held_at TIMESTAMP NOT NULL, decided_at TIMESTAMP, decided_by VARCHAR,
            PRIMARY KEY (run_id, campaign))"""
    )


def hold(
    con: duckdb.DuckDBPyConnection, run_id: str, campaign: str, reason: str, selected: int, previous: int | None
) -> Hold:
    """Record that this run of the campaign waits for approval (idempotent per run and campaign)."""
    ensure_holds(con)
    con.execute(
        f"""INSERT INTO {HOLDS_TABLE} (run_id, campaign, reason, selected, previous_selected, status, held_at)
            VALUES (?, ?, ?, ?, ?, 'waiting', timezone('UTC', now()))
            ON CONFLICT (run_id, campaign) DO NOTHING""",
        [run_id, campaign, reason, selected, previous],
    )
    found = get_hold(con, run_id, campaign)
    assert found is not None
    return found


def get_hold(con: duckdb.DuckDBPyConnection, run_id: str, campaign: str) -> Hold | None:
    ensure_holds(con)
    row = con.execute(
        f"SELECT run_id, campaign, reason, selected, previous_selected, status FROM {HOLDS_TABLE} "
        "WHERE run_id = ? AND campaign = ?",
        [run_id, campaign],
    ).fetchone()
    return Hold(*row) if row else None


def waiting_holds(con: duckdb.DuckDBPyConnection) -> list[Hold]:
    ensure_holds(con)
    rows = con.execute(
        f"SELECT run_id, campaign, reason, selected, previous_selected, status FROM {HOLDS_TABLE} "
        "WHERE status = 'waiting' ORDER BY held_at"
    ).fetchall()
    return [Hold(*r) for r in rows]


def decide(con: duckdb.DuckDBPyConnection, run_id: str, campaign: str, decision: Decision, by: str) -> Hold:
    """Approve or reject a waiting hold; the next send of that run goes ahead (approved) or never does."""
    current = get_hold(con, run_id, campaign)
    if current is None:
        raise HoldError(f"no hold for campaign {campaign!r} in run {run_id!r}: see `kizuna campaigns holds`")
    if current.status != "waiting":
        raise HoldError(f"the hold of {campaign!r} in run {run_id!r} was already {current.status}")
    con.execute(
        f"UPDATE {HOLDS_TABLE} SET status = ?, decided_at = timezone('UTC', now()), decided_by = ? "
        "WHERE run_id = ? AND campaign = ?",
        [decision, by, run_id, campaign],
    )
    decided = get_hold(con, run_id, campaign)
    assert decided is not None
    return decided
