"""The send ledger: one row per message key, claimed before sending, so nothing goes out twice."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from kizuna.warehouse import OPS_SCHEMA

LEDGER_TABLE = f"{OPS_SCHEMA}.send_ledger"
STATES = ("pending", "sent", "failed")


def ensure_ledger(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {OPS_SCHEMA}")
    con.execute(f"""
        CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
            message_key VARCHAR PRIMARY KEY,
            campaign VARCHAR NOT NULL,
            contact_id VARCHAR NOT NULL,
            email VARCHAR NOT NULL,
            occasion VARCHAR NOT NULL,
            run_id VARCHAR NOT NULL,
            state VARCHAR NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
            backend VARCHAR,
            provider_message_id VARCHAR,
            error VARCHAR,
            claimed_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP)""")


def claim(con: duckdb.DuckDBPyConnection, run_id: str, campaign: str, backend: str) -> int:
    """Record every selected recipient of this run as pending, unless its key is already in the ledger.

    A key whose last attempt failed outright (the backend refused it) is claimed again.

    Committed before anything is sent: a crash after this point leaves 'pending' rows that the next run
    resolves (re-sent only through a backend that is idempotent per key, see pending_keys).
    """
    before = con.execute(f"SELECT count(*) FROM {LEDGER_TABLE}").fetchone()
    con.execute(
        f"""
        INSERT INTO {LEDGER_TABLE} (message_key, campaign, contact_id, email, occasion, run_id, state, backend,
                                    claimed_at)
        SELECT message_key, campaign, contact_id, email, occasion, run_id, 'pending', ?,
               timezone('UTC', now())
        FROM {OPS_SCHEMA}.campaign_recipients
        WHERE run_id = ? AND campaign = ? AND is_selected
        ON CONFLICT (message_key) DO UPDATE
            SET state = 'pending', run_id = excluded.run_id, error = NULL, claimed_at = excluded.claimed_at
            WHERE send_ledger.state = 'failed'""",
        [backend, run_id, campaign],
    )
    after = con.execute(f"SELECT count(*) FROM {LEDGER_TABLE}").fetchone()
    return int(after[0] if after else 0) - int(before[0] if before else 0)


def release(con: duckdb.DuckDBPyConnection, run_id: str, campaign: str) -> None:
    """Drop this run's claims that were never attempted (e.g. a template failed to render)."""
    con.execute(
        f"DELETE FROM {LEDGER_TABLE} WHERE run_id = ? AND campaign = ? AND state = 'pending'", [run_id, campaign]
    )


def pending_keys(con: duckdb.DuckDBPyConnection, campaign: str, run_id: str, *, include_earlier: bool) -> list[str]:
    """Keys still to send: this run's claims, plus earlier runs' unfinished ones when that is safe."""
    sql = f"SELECT message_key FROM {LEDGER_TABLE} WHERE campaign = ? AND state = 'pending'"
    params: list[object] = [campaign]
    if not include_earlier:
        sql += " AND run_id = ?"
        params.append(run_id)
    return [r[0] for r in con.execute(sql + " ORDER BY message_key", params).fetchall()]


def mark(con: duckdb.DuckDBPyConnection, outcomes: Sequence[tuple[str, str, str | None, str | None]]) -> None:
    """Record (message_key, state, provider_message_id, error) for a batch in one transaction."""
    if not outcomes:
        return
    keys, states, ids, errors = (list(col) for col in zip(*outcomes, strict=True))
    con.execute(
        f"""
        UPDATE {LEDGER_TABLE} AS l
        SET state = o.state, provider_message_id = o.provider_message_id, error = o.error,
            finished_at = timezone('UTC', now())
        FROM (SELECT unnest(?::VARCHAR[]) AS message_key, unnest(?::VARCHAR[]) AS state,
                     unnest(?::VARCHAR[]) AS provider_message_id, unnest(?::VARCHAR[]) AS error) AS o
        WHERE l.message_key = o.message_key""",
        [keys, states, ids, errors],
    )
