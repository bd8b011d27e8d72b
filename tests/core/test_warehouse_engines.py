"""The warehouse interface (kizuna.core.connection.Connection) behaves the same on DuckDB and on PostgreSQL.

Each test runs on a DuckDB file and on a database of the session's real PostgreSQL server, through the one
`connect` the modules use, with the calls and parameter styles kizuna's modules make.
"""

from __future__ import annotations

import threading
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kizuna.core.connection import Connection, WarehouseError, connect
from kizuna.core.postgres_warehouse import pyformat
from tests.postgres_server import PostgresServer


@pytest.fixture
def target(engine_target: Path | str) -> Path | str:
    return engine_target


@pytest.fixture
def con(engine_con: Connection) -> Connection:
    return engine_con


def test_parameters_in_order_by_name_and_by_number_and_text_left_alone(con: Connection) -> None:
    assert con.execute("SELECT ? + 1, ? || 'b'", [41, "a"]).fetchone() == (42, "ab")
    assert con.execute("SELECT $when + 1, $who", {"when": date(2026, 1, 31), "who": "x"}).fetchone() == (
        date(2026, 2, 1),
        "x",
    )
    assert con.execute("SELECT $2, $1", ["first", "second"]).fetchone() == ("second", "first")
    # a question mark, a dollar and a percent sign inside quotes or comments are text, not parameters
    row = con.execute(
        "SELECT 'is it 100% ? $x' AS \"a?b\", 7 % 4 -- what about ? and $y\n, ? /* and ? */", ["p"]
    ).fetchone()
    assert row == ("is it 100% ? $x", 3, "p")
    assert con.description[0][0] == "a?b"


def test_lists_as_parameters_cast_and_unnested(con: Connection) -> None:
    got = con.execute("SELECT unnest(?::VARCHAR[]) AS v ORDER BY v", [["b", "a", "c"]]).fetchall()
    assert got == [("a",), ("b",), ("c",)]
    con.execute("CREATE TABLE t (k VARCHAR, n INTEGER)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [("a", 1), ("b", 2), ("c", 3)])
    assert con.execute(
        "SELECT sum(n) FROM t WHERE k IN (SELECT unnest($keys::VARCHAR[]))", {"keys": ["a", "c"]}
    ).fetchone() == (4,)


def test_a_statement_without_rows_has_nothing_to_fetch(con: Connection) -> None:
    con.execute("CREATE TABLE e (k INTEGER)")
    assert con.execute("INSERT INTO e VALUES (1), (2)").fetchall() in ([], [(2,)])  # DuckDB answers the count
    assert con.execute("SELECT k FROM e WHERE k > 5").fetchone() is None
    cur = con.execute("SELECT k, k * 2 AS twice FROM e ORDER BY k")
    assert [d[0] for d in cur.description] == ["k", "twice"]
    assert cur.fetchmany(1) == [(1, 2)] and cur.fetchall() == [(2, 4)]


def test_results_as_frames_and_arrays(con: Connection) -> None:
    frame = con.execute(
        "SELECT 1 AS n, 'あ' AS s, CAST('2026-02-01' AS DATE) AS d, CAST(12.5 AS DECIMAL(18, 2)) AS m "
        "UNION ALL SELECT 2, NULL, NULL, NULL ORDER BY n"
    ).df()
    assert list(frame.columns) == ["n", "s", "d", "m"]
    assert frame["n"].tolist() == [1, 2] and frame["s"].iloc[0] == "あ" and pd.isna(frame["s"].iloc[1])
    assert pd.Timestamp(frame["d"].iloc[0]) == pd.Timestamp("2026-02-01") and float(frame["m"].iloc[0]) == 12.5
    # the pandas types DuckDB's df() gives, which code comparing with a Timestamp or summing money relies on
    assert pd.api.types.is_datetime64_any_dtype(frame["d"]) and frame["d"].iloc[0] == pd.Timestamp("2026-02-01")
    assert frame["m"].dtype == "float64" and pd.isna(frame["m"].iloc[1])
    assert pd.api.types.is_integer_dtype(frame["n"])
    arrays = con.execute("SELECT 3 AS a UNION ALL SELECT 4 ORDER BY a").fetchnumpy()
    assert list(np.asarray(arrays["a"])) == [3, 4]


def test_a_frame_registered_is_a_table_of_the_session_until_unregistered(con: Connection) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3"],
            "score": [0.25, np.nan, 1.0],
            "rank": pd.array([1, None, 3], dtype="Int64"),
            "active": [True, False, True],
            "since": [date(2025, 1, 1), date(2025, 6, 30), None],
            "seen_at": pd.to_datetime(["2026-01-01 09:00", "2026-01-02 10:30", "2026-01-03 00:00"]),
            "note": ["a,b", 'say "hi"', ""],
        }
    )
    con.register("scored", frame)
    rows = con.execute(
        "SELECT customer_id, score, rank, active, since, seen_at, note FROM scored ORDER BY customer_id"
    ).fetchall()
    assert rows[0] == ("C1", 0.25, 1, True, date(2025, 1, 1), datetime(2026, 1, 1, 9, 0), "a,b")
    assert rows[1][1] is None and rows[1][2] is None and rows[1][6] == 'say "hi"'
    assert rows[2][4] is None and rows[2][6] == ""
    con.execute("CREATE TABLE kept AS SELECT customer_id FROM scored WHERE active")
    con.unregister("scored")
    with pytest.raises(WarehouseError):
        con.execute("SELECT count(*) FROM scored")
    assert con.execute("SELECT count(*) FROM kept").fetchone() == (2,)


def test_a_transaction_rolled_back_leaves_nothing_and_a_refusal_is_a_warehouse_error(con: Connection) -> None:
    con.execute("CREATE TABLE ledger (k VARCHAR PRIMARY KEY, state VARCHAR)")
    con.execute("BEGIN TRANSACTION")
    con.execute("INSERT INTO ledger VALUES ('m1', 'claimed')")
    con.execute("ROLLBACK")
    assert con.execute("SELECT count(*) FROM ledger").fetchone() == (0,)
    con.execute("INSERT INTO ledger VALUES ('m1', 'claimed')")
    with pytest.raises(WarehouseError) as refused:
        con.execute("INSERT INTO ledger VALUES (?, ?)", ["m1", "again"])
    assert "m1" in str(refused.value) or "duplicate" in str(refused.value).lower()
    con.execute(
        "INSERT INTO ledger VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET state = excluded.state", ["m1", "accepted"]
    )
    assert con.execute("SELECT state FROM ledger").fetchone() == ("accepted",)


def test_a_cursor_is_another_session_for_another_thread(target: Path | str) -> None:
    with connect(target) as con:
        con.execute("CREATE TABLE n (v INTEGER)")
        seen: list[object] = []

        def other() -> None:
            with con.cursor() as cur:
                cur.execute("INSERT INTO n VALUES (?)", [5])
                seen.append(cur.execute("SELECT sum(v) FROM n").fetchone())

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert seen == [(5,)]
        assert con.execute("SELECT sum(v) FROM n").fetchone() == (5,)


def test_a_read_only_session_refuses_to_write(target: Path | str) -> None:
    with connect(target) as con:
        con.execute("CREATE TABLE r (v INTEGER)")
    with connect(target, read_only=True) as reader:
        assert reader.execute("SELECT count(*) FROM r").fetchone() == (0,)
        with pytest.raises(WarehouseError):
            reader.execute("INSERT INTO r VALUES (1)")


def test_a_server_that_cannot_be_reached_is_a_warehouse_error_without_the_password(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.url("kizuna", password="pg-pass-5678").replace(f":{postgres_server.port}/", ":1/")
    with pytest.raises(WarehouseError) as refused, connect(url):
        pass
    assert "pg-pass-5678" not in str(refused.value) and "port 1" in str(refused.value)


def test_parameters_are_rewritten_only_outside_quotes_and_comments() -> None:
    assert pyformat("SELECT ?, '?', \"?\" -- ?\n", [1]) == ("SELECT %s, '?', \"?\" -- ?\n", [1])
    assert pyformat("SELECT $a, $a, 'it''s $a' /* $a */", {"a": 1}) == (
        "SELECT %(a)s, %(a)s, 'it''s $a' /* $a */",
        {"a": 1},
    )
    assert pyformat("SELECT 5 % 2, '50%'", []) == ("SELECT 5 %% 2, '50%%'", [])
    assert pyformat("SELECT 5 % 2", None) == ("SELECT 5 % 2", None)  # no parameters: psycopg2 reads no %
    assert pyformat("SELECT $2::DATE, $1", ["a", date(2026, 1, 1)]) == ("SELECT %s::DATE, %s", [date(2026, 1, 1), "a"])
    assert pyformat("SELECT ?", [Decimal("1.5")])[1] == [Decimal("1.5")]
