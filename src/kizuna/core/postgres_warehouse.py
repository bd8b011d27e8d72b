"""A PostgreSQL warehouse connection that kizuna's modules call as they call DuckDB's (core.connection.Connection).

kizuna's SQL is written with DuckDB's parameters, `?` in order or `$name` from a dict; psycopg2 takes `%s` and
`%(name)s`. `pyformat` rewrites a statement once, outside quoted strings, identifiers and comments, and doubles
a literal `%`. A statement's result is read from the connection, as DuckDB's is: `execute` returns the connection.
Errors are `PostgresError`, one of core.connection's `WarehouseError`s, so `except WarehouseError` holds on both
engines. core.connection's `connect` opens one for a `postgresql://` warehouse.
Transactions are the statements' own (`BEGIN`, `COMMIT`, `ROLLBACK`): the session is in autocommit, as DuckDB's.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from kizuna.core.settings import without_password

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PostgresConnection", "PostgresError", "WarehouseUnreachableError", "pyformat"]


class PostgresError(Exception):
    """PostgreSQL refused a statement; the server's message, and its SQLSTATE code when it gave one."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class WarehouseUnreachableError(PostgresError):
    """The PostgreSQL warehouse could not be reached or refused the login (names the server without password)."""


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+")


Params = Sequence[Any] | Mapping[str, Any] | None


def pyformat(query: str, parameters: object = None) -> tuple[str, Params]:
    """The statement and its parameters as psycopg2 takes them: `?` → `%s`, `$name` → `%(name)s`, `$1` → `%s`
    (its values reordered), `%` → `%%`; text in quotes ('…', "…") and comments is left as it is."""
    if parameters is None:
        return query, None
    sql, numbered = _rewritten(query)
    return sql, _bound(parameters, numbered)


def _rewritten(query: str) -> tuple[str, list[int]]:
    """pyformat's statement, and the order of its `$n` parameters (empty: none numbered)."""
    out: list[str] = []
    numbered: list[int] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch in "'\"":
            end = i + 1
            while end < n:
                if query[end] == ch:
                    if end + 1 < n and query[end + 1] == ch:  # '' inside '…' is one quote
                        end += 2
                        continue
                    break
                end += 1
            out.append(query[i : end + 1].replace("%", "%%"))
            i = end + 1
        elif query.startswith("--", i):
            end = query.find("\n", i)
            end = n if end < 0 else end
            out.append(query[i:end].replace("%", "%%"))
            i = end
        elif query.startswith("/*", i):
            end = query.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(query[i:end].replace("%", "%%"))
            i = end
        elif ch == "?":
            out.append("%s")
            i += 1
        elif ch == "$" and (name := _NAME.match(query, i + 1)):
            out.append(f"%({name.group()})s")
            i = name.end()
        elif ch == "$" and (number := _NUMBER.match(query, i + 1)):
            out.append("%s")
            numbered.append(int(number.group()))
            i = number.end()
        elif ch == "%":
            out.append("%%")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out), numbered


def _bound(parameters: object, numbered: list[int]) -> Params:
    """pyformat's parameters for a statement rewritten by _rewritten."""
    if isinstance(parameters, Mapping):
        return {str(k): _value(v) for k, v in parameters.items()}
    if not isinstance(parameters, Sequence) or isinstance(parameters, str | bytes):
        raise TypeError(f"parameters must be a sequence or a mapping, not {type(parameters).__name__}")
    values = [_value(v) for v in parameters]
    return [values[k - 1] for k in numbered] if numbered else values


def _value(value: object) -> object:
    """A parameter as psycopg2 adapts it like DuckDB: a list or tuple is an array (psycopg2 makes a tuple a row)."""
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    return value


class PostgresConnection:
    """One session on the PostgreSQL warehouse, called as a DuckDB connection is (core.connection.Connection)."""

    def __init__(self, dsn: str, *, read_only: bool = False) -> None:
        self._dsn = dsn
        self._read_only = read_only
        try:
            self._conn = psycopg2.connect(dsn)
        except psycopg2.Error as exc:
            said = " ".join(line.strip() for line in _message(exc).splitlines() if line.strip())
            raise WarehouseUnreachableError(
                f"cannot reach the PostgreSQL warehouse {without_password(dsn)}: {said}", exc.pgcode
            ) from None
        self._conn.set_session(readonly=read_only, autocommit=True)
        self._cur: psycopg2.extensions.cursor | None = None

    # Statements

    def execute(self, query: str, parameters: object = None, /) -> PostgresConnection:
        sql, params = pyformat(query, parameters)
        cur = self._conn.cursor()
        with _as_warehouse_error():
            cur.execute(sql, params)
        self._replace_cursor(cur)
        return self

    def executemany(self, query: str, parameters: object = None, /) -> PostgresConnection:
        rows = list(parameters) if isinstance(parameters, Sequence | Iterator) else []
        if not rows:
            return self
        sql, numbered = _rewritten(query)  # once: only the rows' values differ
        converted = [_bound(row, numbered) for row in rows]
        cur = self._conn.cursor()
        with _as_warehouse_error():
            psycopg2.extras.execute_batch(cur, sql, converted, page_size=1000)
        self._replace_cursor(cur)
        return self

    def _replace_cursor(self, cur: psycopg2.extensions.cursor) -> None:
        if self._cur is not None:
            self._cur.close()
        self._cur = cur

    # The last statement's result (none: nothing to fetch, as DuckDB says for a statement without rows)

    @property
    def description(self) -> Sequence[tuple[Any, ...]]:
        return list(self._cur.description or []) if self._cur is not None else []

    def fetchone(self) -> tuple[Any, ...] | None:
        if not self.description:
            return None
        assert self._cur is not None
        row = self._cur.fetchone()
        return tuple(row) if row is not None else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        if not self.description:
            return []
        assert self._cur is not None
        return [tuple(row) for row in self._cur.fetchall()]

    def fetchmany(self, size: int = 1, /) -> list[tuple[Any, ...]]:
        if not self.description:
            return []
        assert self._cur is not None
        return [tuple(row) for row in self._cur.fetchmany(size)]

    def df(self) -> pd.DataFrame:
        """The result as DuckDB's df() gives it: dates and timestamps as datetime64, numerics as float64,
        integers and booleans nullable only when a NULL is among them, text as text."""
        import pandas as pd

        description = list(self.description)
        frame = pd.DataFrame.from_records(self.fetchall(), columns=[d[0] for d in description])
        for i, column in enumerate(description):
            frame.isetitem(i, _as_duckdb_gives(frame.iloc[:, i], column[1]))
        return frame

    def fetchnumpy(self) -> dict[str, Any]:
        frame = self.df()
        return {name: frame[name].to_numpy() for name in frame.columns}

    # Frames as tables of the session (DuckDB's register makes a view on the frame; here a temporary table)

    def register(self, view_name: str, python_object: object, /) -> PostgresConnection:
        import pandas as pd

        if not isinstance(python_object, pd.DataFrame):
            raise TypeError(f"only a pandas DataFrame can be registered on PostgreSQL, not {type(python_object)}")
        frame = python_object
        columns = ", ".join(f"{_quote(str(c))} {_column_type(frame[c])}" for c in frame.columns)
        self.unregister(view_name)
        self.execute(f"CREATE TEMPORARY TABLE {_quote(view_name)} ({columns})")
        text = io.StringIO()
        frame.to_csv(text, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d %H:%M:%S.%f")
        text.seek(0)
        with self._conn.cursor() as cur, _as_warehouse_error():
            cur.copy_expert(f"COPY {_quote(view_name)} FROM STDIN WITH (FORMAT csv, NULL '\\N')", text)
        return self

    def copy_csv(self, table: str, path: Path) -> None:
        """Append a headerless CSV file (an empty field NULL, a quoted empty one '') to `table` (quoted as SQL)."""
        with path.open(encoding="utf-8") as text, self._conn.cursor() as cur, _as_warehouse_error():
            cur.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv)", text)

    def unregister(self, view_name: str, /) -> PostgresConnection:
        return self.execute(f"DROP TABLE IF EXISTS pg_temp.{_quote(view_name)}")

    # Sessions

    def cursor(self) -> PostgresConnection:
        """Another session on the same database (for another thread), as a DuckDB cursor is."""
        return PostgresConnection(self._dsn, read_only=self._read_only)

    def close(self) -> None:
        if self._cur is not None:
            self._cur.close()
            self._cur = None
        self._conn.close()

    def __enter__(self) -> PostgresConnection:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object, /) -> None:
        self.close()


@contextmanager
def _as_warehouse_error() -> Iterator[None]:
    try:
        yield
    except psycopg2.Error as exc:
        raise PostgresError(_message(exc), exc.pgcode) from None


def _message(exc: psycopg2.Error) -> str:
    """The server's own words (never the connection string: psycopg2 does not put it in its messages)."""
    return (exc.pgerror or str(exc)).strip()


# PostgreSQL type OIDs (pg_type) of the columns whose pandas type DuckDB's df() chooses differently from the
# Python values psycopg2 returns.
_DATES, _TIMESTAMPTZ = {1082, 1114}, 1184
_FLOATS, _INTEGERS, _BOOLEAN = {700, 701, 1700}, {20, 21, 23}, 16


def _as_duckdb_gives(column: pd.Series, type_code: int) -> pd.Series:
    import pandas as pd

    if type_code in _DATES:
        return pd.to_datetime(column).astype("datetime64[us]")
    if type_code == _TIMESTAMPTZ:
        return pd.to_datetime(column, utc=True).astype("datetime64[us, UTC]")
    if type_code in _FLOATS:
        return column.astype("float64")  # Decimal and None (psycopg2's numeric and NULL) become float and NaN
    if type_code in _INTEGERS:
        return column.astype("Int64" if column.isna().any() else "int64")
    if type_code == _BOOLEAN:
        return column.astype("boolean" if column.isna().any() else "bool")
    return column


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column_type(column: pd.Series) -> str:
    """The PostgreSQL type a frame's column is stored as."""
    import pandas as pd

    kind = pd.api.types.infer_dtype(column, skipna=True)
    if pd.api.types.is_bool_dtype(column.dtype) or kind == "boolean":
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(column.dtype) or kind == "integer":
        return "BIGINT"
    if pd.api.types.is_float_dtype(column.dtype) or kind in ("floating", "mixed-integer-float"):
        return "DOUBLE PRECISION"
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return "TIMESTAMPTZ"
    if pd.api.types.is_datetime64_dtype(column.dtype) or kind == "datetime":
        return "TIMESTAMP"
    if kind == "date":
        return "DATE"
    if kind == "decimal":
        return "NUMERIC"
    return "TEXT"
