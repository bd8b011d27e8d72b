"""Publishing a staged table by applying its delta to the published one, instead of copying every row again.

`kizuna.core.warehouse.stage_changes` compares the staged table with the published one key by key (a keyless
table's key is its row's hash) over whole rows, provenance (`_source_file`, `_source_row`) included, and stages
the keys whose rows differ in any way as a replace list: inserted, updated and deleted keys, and keys whose rows
only moved in the file. Replacing exactly those keys' rows (delete the published ones, insert the staged ones)
leaves the published table equal, as a multiset of whole rows, to a copy of the staged one: every other key has
the same rows on both sides (the same count and the same sum of 64-bit row hashes, provenance included).

The delta is applied only when it provably describes the two tables as they are at publish time (the row counts
add up: published - replaced old rows + replaced new rows = staged), both tables have the very same columns, and
it is small; otherwise the table is copied as before. Rows deleted from a DuckDB table are reclaimed when a
checkpoint finds a row group mostly deleted, so a table applied to day after day does not grow without bound.
"""

from __future__ import annotations

import logging

import duckdb

log = logging.getLogger(__name__)

REPLACE_PREFIX = "_replace__"
# Above this share of the staged rows replaced (and this many rows), a copy is cheaper than deleting and inserting.
MAX_REPLACED_SHARE = 0.25
MIN_REPLACED_LIMIT = 100_000


def replace_table(incoming_schema: str, table: str) -> str:
    """The staged replace list of a table: key (the key's own type), n_h, n_n, o_h, o_n, n_p, o_p."""
    return f'{incoming_schema}."{REPLACE_PREFIX}{table}"'


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str]]:
    return [
        (str(r[0]), str(r[1]))
        for r in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [schema, table],
        ).fetchall()
    ]


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def apply_delta(
    con: duckdb.DuckDBPyConnection,
    raw_schema: str,
    incoming_schema: str,
    table: str,
    key_of: dict[str, str],
) -> bool:
    """Replace the staged replace list's keys of raw.<table> with the staged rows of those keys; False (nothing
    done) when the delta cannot be trusted or is not worth it, and the caller copies the table instead.

    key_of gives the key as SQL over each schema's table (the contract key, or the row hash of a keyless table).
    Runs inside the caller's publishing transaction.
    """
    replace = replace_table(incoming_schema, table)
    if not _columns(con, incoming_schema, f"{REPLACE_PREFIX}{table}"):
        return False
    columns = _columns(con, raw_schema, table)
    if not columns or columns != _columns(con, incoming_schema, table):
        return False
    raw, staged = f'{raw_schema}."{table}"', f'{incoming_schema}."{table}"'
    sums = con.execute(
        f"SELECT coalesce(sum(n_n), 0), coalesce(sum(o_n), 0), count(*) FILTER (WHERE key IS NULL) FROM {replace}"
    ).fetchone()
    new_rows, old_rows, null_keys = (int(sums[0]), int(sums[1]), int(sums[2])) if sums else (0, 0, 0)
    if null_keys:
        return False  # `key IN (...)` cannot find rows without a key
    raw_rows, staged_rows = _count(con, f"SELECT count(*) FROM {raw}"), _count(con, f"SELECT count(*) FROM {staged}")
    if raw_rows - old_rows + new_rows != staged_rows:
        return False  # the replace list no longer describes the tables (the staged one was rewritten after it)
    if new_rows + old_rows > max(MAX_REPLACED_SHARE * staged_rows, MIN_REPLACED_LIMIT):
        return False
    if old_rows:
        deleted = _count(con, f"DELETE FROM {raw} WHERE {key_of[raw_schema]} IN (SELECT key FROM {replace})")
        if deleted != old_rows:
            raise RuntimeError(f"publishing {table}: deleted {deleted:,} rows where the staged delta said {old_rows:,}")
    if new_rows:
        inserted = _count(
            con,
            f"INSERT INTO {raw} SELECT * FROM {staged} WHERE {key_of[incoming_schema]} IN (SELECT key FROM {replace})",
        )
        if inserted != new_rows:
            raise RuntimeError(
                f"publishing {table}: inserted {inserted:,} rows where the staged delta said {new_rows:,}"
            )
    log.info("published %s as a delta: %d rows replaced by %d", table, old_rows, new_rows)
    return True
