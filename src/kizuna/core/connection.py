"""Opening the warehouse: a DuckDB file (a memory limit, waiting while another process holds it) or, for a
postgresql:// URL, a session on a PostgreSQL server (kizuna.core.postgres_warehouse).

The one module that imports duckdb (import contract "warehouse-engine" in pyproject.toml): every other module names
a connection `Connection`, catches `WarehouseError` and opens the warehouse with `connect`, so the engine behind the
warehouse is chosen here alone (docs/scaling.md). kizuna.core.warehouse re-exports these names; the raw schema's
shape and publishing live there.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb

from kizuna.core.postgres_warehouse import PostgresConnection, PostgresError
from kizuna.core.settings import is_server_url

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class Connection(Protocol):
    """A connection to the warehouse (or to a scratch database, below): what kizuna's modules may call on one.

    DuckDB's connection is one as it is; another engine's implements these calls (issue 24). Like DuckDB's, a
    connection runs one statement at a time: `execute` returns the connection itself, whose fetch methods and
    `description` then read that statement's result. Parameters are `?` (positional) or `$name` (a dict).
    """

    def execute(self, query: str, parameters: object = None, /) -> Connection: ...
    def executemany(self, query: str, parameters: object = None, /) -> Connection: ...
    def fetchone(self) -> tuple[Any, ...] | None: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...
    def fetchmany(self, size: int = 1, /) -> list[tuple[Any, ...]]: ...
    def df(self) -> pd.DataFrame: ...
    def fetchnumpy(self) -> dict[str, Any]: ...
    @property
    def description(self) -> Sequence[tuple[Any, ...]]: ...
    def register(self, view_name: str, python_object: object, /) -> Connection: ...
    def unregister(self, view_name: str, /) -> Connection: ...
    def cursor(self) -> Connection: ...
    def close(self) -> None: ...
    def __enter__(self) -> Connection: ...
    def __exit__(self, exc_type: object, exc: object, traceback: object, /) -> None: ...


WarehouseError: tuple[type[Exception], ...] = (duckdb.Error, PostgresError)
"""What a statement the engine refuses raises (a missing table, a constraint, a type): `except WarehouseError`."""
ENGINE_VERSION: str = duckdb.__version__
"""The engine's version: stored beside what it computed where a new version could compute it differently."""


def scratch(config: dict[str, Any] | None = None) -> Connection:
    """An in-memory DuckDB for work on files beside the warehouse (checking a CSV, parsing a SQL expression,
    writing demo files): a local tool whatever engine holds the warehouse, never the warehouse itself."""
    return duckdb.connect(":memory:", config=config or {})


# DuckDB's memory_limit for every connection kizuna opens and for dbt's (dbt_project/profiles.yml reads the same
# variable). DuckDB's own default is 80% of the machine's RAM, which it fills with cached pages at 1M customers;
# under a limit it spills to <warehouse>.tmp instead. Give a DuckDB size such as "2GB" or "500MB".
MEMORY_LIMIT_ENV = "KIZUNA_DUCKDB_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "2GB"


_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B)", re.IGNORECASE)


def memory_limit() -> str:
    """The memory_limit from the environment, checked here so a typo names the variable, not a parser."""
    value = os.environ.get(MEMORY_LIMIT_ENV, "").strip() or DEFAULT_MEMORY_LIMIT
    if not _SIZE.fullmatch(value):
        raise ValueError(f"{MEMORY_LIMIT_ENV}={value!r} is not a size: give one such as 2GB or 500MB")
    return value


class WarehouseLockedError(RuntimeError):
    """Another process holds the DuckDB file."""


_PID = re.compile(r"\(PID (\d+)\)")


def describe_pid(pid: int) -> str:
    """'PID 123 (python -m duckdb …)' where /proc tells the command line, else 'PID 123'."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"PID {pid}"
    command = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return f"PID {pid} ({command[:200]})" if command else f"PID {pid}"


def holder_from_error(message: str) -> str | None:
    """The process DuckDB's 'Conflicting lock is held in … (PID n)' names, described."""
    found = _PID.search(message)
    return describe_pid(int(found.group(1))) if found else None


def waiting_message(path: Path | str, holder: str, wait_seconds: float, setting: str | None) -> str:
    """The one line every writer shows when it starts waiting for the file, whoever holds it."""
    limit = f"giving up after {wait_seconds:.0f} s" + (f" ({setting})" if setting else "")
    return f"waiting for the warehouse, held by {holder}; {limit}. File: {path}"


@contextmanager
def connect(path: Path | str, *, read_only: bool = False) -> Iterator[Connection]:
    """Open the warehouse and always close it, so the next step (or dbt) can take the file.

    A `postgresql://` URL opens a session on that server instead (kizuna.core.postgres_warehouse): the modules whose
    SQL runs there are listed in docs/scaling.md, each tested on both engines (tests/warehouse_engines.py)."""
    if is_server_url(path):
        with PostgresConnection(str(path), read_only=read_only) as server:
            yield server
        return
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"warehouse {path} does not exist yet: run `kizuna run` or `kizuna ingest` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only, config={"memory_limit": memory_limit()})
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseLockedError(
                f"warehouse {path} is held by another process; wait for it to finish ({exc})"
            ) from exc
        raise
    try:
        yield con
    finally:
        con.close()


@contextmanager
def connect_when_free(
    path: Path | str,
    *,
    wait_seconds: float,
    read_only: bool = False,
    max_delay: float = 10.0,
    setting: str | None = None,
) -> Iterator[Connection]:
    """connect(), waiting with backoff while another process holds the file; WarehouseLockedError after wait_seconds.

    For jobs that share the file with the daily run (the event loader): a held file is normal, not an error. The
    first wait is a WARNING naming the holder (the CLI shows it); setting names what sets wait_seconds.
    """
    deadline = time.monotonic() + wait_seconds
    delay, attempt = 0.2, 1
    while True:
        stack = ExitStack()
        try:
            con = stack.enter_context(connect(path, read_only=read_only))
            break
        except WarehouseLockedError as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            if attempt == 1:
                holder = holder_from_error(str(exc)) or "another process"
                log.warning("%s", waiting_message(path, holder, wait_seconds, setting))
            pause = min(delay * random.uniform(0.5, 1.0), left)  # jitter: two waiters do not retry in step
            log.info("warehouse %s is held by another process; attempt %d, retrying in %.1f s", path, attempt, pause)
            time.sleep(pause)
            delay, attempt = min(delay * 2, max_delay), attempt + 1
    with stack:
        yield con
