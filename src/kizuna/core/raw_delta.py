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

from kizuna.core.connection import ENGINE_VERSION, Connection
from kizuna.core.sql_dialect import sql_literal

log = logging.getLogger(__name__)

REPLACE_PREFIX = "_replace__"
# Above this share of the staged rows replaced (and this many rows), a copy is cheaper than deleting and inserting.
MAX_REPLACED_SHARE = 0.25
MIN_REPLACED_LIMIT = 100_000


def replace_table(incoming_schema: str, table: str) -> str:
    """The staged replace list of a table: key (the key's own type), n_h, n_n, o_h, o_n, n_p, o_p."""
    return f'{incoming_schema}."{REPLACE_PREFIX}{table}"'


def table_columns(con: Connection, schema: str, table: str) -> list[tuple[str, str]]:
    return [
        (str(r[0]), str(r[1]))
        for r in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [schema, table],
        ).fetchall()
    ]


def count_of(con: Connection, sql: str) -> int:
    """The first value of a statement's first row as an int (a count, a sum, the rows a DELETE took); 0 if NULL."""
    row = con.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def table_comment(con: Connection, schema: str, table: str) -> str | None:
    """The comment a table was marked with (the fingerprint of what made it); None without one."""
    row = con.execute(
        "SELECT comment FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [schema, table]
    ).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def apply_delta(
    con: Connection,
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
    if not table_columns(con, incoming_schema, f"{REPLACE_PREFIX}{table}"):
        return False
    columns = table_columns(con, raw_schema, table)
    if not columns or columns != table_columns(con, incoming_schema, table):
        return False
    raw, staged = f'{raw_schema}."{table}"', f'{incoming_schema}."{table}"'
    sums = con.execute(
        f"SELECT coalesce(sum(n_n), 0), coalesce(sum(o_n), 0), count(*) FILTER (WHERE key IS NULL) FROM {replace}"
    ).fetchone()
    new_rows, old_rows, null_keys = (int(sums[0]), int(sums[1]), int(sums[2])) if sums else (0, 0, 0)
    if null_keys:
        return False  # `key IN (...)` cannot find rows without a key
    raw_rows, staged_rows = (
        count_of(con, f"SELECT count(*) FROM {raw}"),
        count_of(con, f"SELECT count(*) FROM {staged}"),
    )
    if raw_rows - old_rows + new_rows != staged_rows:
        return False  # the replace list no longer describes the tables (the staged one was rewritten after it)
    if new_rows + old_rows > max(MAX_REPLACED_SHARE * staged_rows, MIN_REPLACED_LIMIT):
        return False
    if old_rows:
        deleted = count_of(con, f"DELETE FROM {raw} WHERE {key_of[raw_schema]} IN (SELECT key FROM {replace})")
        if deleted != old_rows:
            raise RuntimeError(f"publishing {table}: deleted {deleted:,} rows where the staged delta said {old_rows:,}")
    if new_rows:
        inserted = count_of(
            con,
            f"INSERT INTO {raw} SELECT * FROM {staged} WHERE {key_of[incoming_schema]} IN (SELECT key FROM {replace})",
        )
        if inserted != new_rows:
            raise RuntimeError(
                f"publishing {table}: inserted {inserted:,} rows where the staged delta said {new_rows:,}"
            )
    log.info("published %s as a delta: %d rows replaced by %d", table, old_rows, new_rows)
    return True


# --- the published tables' per-key hashes, kept so a day's comparison hashes only the staged rows -------------

HASHES_SCHEMA = "raw_hashes"
HASHES_PREFIX = "_hashes__"


def _stored(con: Connection, raw_schema: str, table: str, fingerprint: str) -> str | None:
    """The kept per-key hashes of raw.<table> (key, h, n, p) when they were made by the same row hash and
    describe as many rows as the table holds; else None (compare with the published rows themselves)."""
    if table_comment(con, HASHES_SCHEMA, table) != fingerprint:
        return None
    stored = f'{HASHES_SCHEMA}."{table}"'
    if count_of(con, f"SELECT sum(n) FROM {stored}") != count_of(con, f'SELECT count(*) FROM {raw_schema}."{table}"'):
        return None
    return stored


def stage_replace(con: Connection, raw_schema: str, incoming_schema: str, table: str, sides: dict[str, str]) -> None:
    """Stage the replace list of a table: every key whose rows differ in any way, provenance included, with
    per side the sum of its rows' hashes (h, provenance aside; p, with it) and their number (n_ new, o_ old).

    sides: per schema, SELECT key, h, p over its table. The old side is the kept per-key hashes of the last
    publish when they fit (the staged rows alone are hashed), else the published rows; then the staged side's
    per-key hashes are staged too (`_hashes__<table>`), for publish_incoming to keep.
    """
    old = _stored(con, raw_schema, table, f"{ENGINE_VERSION} {sides[incoming_schema]}")
    if old is None:
        new = stage_hashes(con, incoming_schema, table, sides[incoming_schema])
        old = f"(SELECT key, sum(h) AS h, count(*) AS n, sum(p) AS p FROM ({sides[raw_schema]}) GROUP BY key)"
    else:
        new = f"(SELECT key, sum(h) AS h, count(*) AS n, sum(p) AS p FROM ({sides[incoming_schema]}) GROUP BY key)"
    con.execute(
        f"CREATE OR REPLACE TABLE {replace_table(incoming_schema, table)} AS SELECT coalesce(n.key, o.key) AS key, "
        "n.h AS n_h, coalesce(n.n, 0) AS n_n, o.h AS o_h, coalesce(o.n, 0) AS o_n, n.p AS n_p, o.p AS o_p "
        f"FROM {new} n FULL JOIN {old} o ON n.key IS NOT DISTINCT FROM o.key "
        "WHERE n.n IS DISTINCT FROM o.n OR n.h IS DISTINCT FROM o.h OR n.p IS DISTINCT FROM o.p"
    )


def stage_replace_of_lines(
    con: Connection, raw_schema: str, incoming_schema: str, table: str, sides: dict[str, str], out: str, added: str
) -> bool:
    """stage_replace for a table staged as raw minus some rows plus others (kizuna.core.raw_lines): per key, the
    new side is the kept old side minus the sums of the rows left out plus those of the rows added, so no row
    outside the change is hashed. out and added: SELECT key, h, p over those rows. False (nothing staged) when
    the kept per-key hashes do not fit raw; the caller then compares whole sides."""
    old = _stored(con, raw_schema, table, f"{ENGINE_VERSION} {sides[incoming_schema]}")
    if old is None:
        return False

    def grouped(side: str) -> str:
        return f"(SELECT key, sum(h) AS h, count(*) AS n, sum(p) AS p FROM ({side}) GROUP BY key)"

    con.execute(
        f"CREATE OR REPLACE TABLE {replace_table(incoming_schema, table)} AS "
        f"WITH m AS {grouped(out)}, a AS {grouped(added)}, k AS (SELECT key FROM m UNION SELECT key FROM a), "
        "s AS (SELECT k.key, o.h AS o_h, coalesce(o.n, 0) AS o_n, o.p AS o_p, "
        "coalesce(o.n, 0) - coalesce(m.n, 0) + coalesce(a.n, 0) AS n_n, "
        "coalesce(o.h, 0) - coalesce(m.h, 0) + coalesce(a.h, 0) AS n_h, "
        "coalesce(o.p, 0) - coalesce(m.p, 0) + coalesce(a.p, 0) AS n_p "
        f"FROM k LEFT JOIN {old} o ON o.key IS NOT DISTINCT FROM k.key "
        "LEFT JOIN m ON m.key IS NOT DISTINCT FROM k.key LEFT JOIN a ON a.key IS NOT DISTINCT FROM k.key) "
        "SELECT key, CASE WHEN n_n > 0 THEN n_h END AS n_h, n_n, o_h, o_n, CASE WHEN n_n > 0 THEN n_p END AS n_p, "
        "o_p FROM s WHERE n_n <> o_n OR (CASE WHEN n_n > 0 THEN n_h END) IS DISTINCT FROM o_h "
        "OR (CASE WHEN n_n > 0 THEN n_p END) IS DISTINCT FROM o_p"
    )
    return True


def stage_hashes(con: Connection, incoming_schema: str, table: str, side: str) -> str:
    """Stage the staged table's per-key hashes whole (side: SELECT key, h, p over it), marked with the row hash
    that made them; the staged table's name."""
    staged = f'{incoming_schema}."{HASHES_PREFIX}{table}"'
    con.execute(
        f"CREATE OR REPLACE TABLE {staged} AS SELECT key, sum(h) AS h, count(*) AS n, sum(p) AS p FROM ({side}) "
        "GROUP BY key"
    )
    con.execute(f"COMMENT ON TABLE {staged} IS {sql_literal(f'{ENGINE_VERSION} {side}')}")
    return staged


def keep_hashes(con: Connection, incoming_schema: str, table: str, published: bool) -> None:
    """In the publishing transaction: keep raw.<table>'s per-key hashes as published. The staged side's
    hashes when staged whole; else the kept ones with the replace list applied (kept + delta = staged); none
    for a table published empty (published False) or compared without a replace list."""
    kept = f'{HASHES_SCHEMA}."{table}"'
    staged = f'{incoming_schema}."{HASHES_PREFIX}{table}"'
    replace = replace_table(incoming_schema, table)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {HASHES_SCHEMA}")
    if published and table_columns(con, incoming_schema, f"{HASHES_PREFIX}{table}"):
        comment = table_comment(con, incoming_schema, f"{HASHES_PREFIX}{table}")
        con.execute(f"CREATE OR REPLACE TABLE {kept} AS SELECT * FROM {staged}")
        con.execute(f"COMMENT ON TABLE {kept} IS {sql_literal(str(comment))}")
    elif published and _replaces_by_key(con, replace) and table_columns(con, HASHES_SCHEMA, table):
        con.execute(f"DELETE FROM {kept} WHERE key IN (SELECT key FROM {replace})")
        con.execute(f"INSERT INTO {kept} SELECT key, n_h, n_n, n_p FROM {replace} WHERE n_n > 0")
    else:
        con.execute(f"DROP TABLE IF EXISTS {kept}")


def _replaces_by_key(con: Connection, replace: str) -> bool:
    """A replace list is staged and every key of it can be found by `key IN (...)` (none is NULL)."""
    schema, _, name = replace.partition(".")
    if not table_columns(con, schema, name.strip('"')):
        return False
    return not count_of(con, f"SELECT count(*) FROM {replace} WHERE key IS NULL")
