"""One writer at a time: a file lock next to the warehouse, and waiting for (and naming) whoever holds the file.

Two kinds of holder exist. Another kizuna run takes the writer lock (``<warehouse>.writer.lock``, fcntl):
the kernel drops it when that process dies, even by SIGKILL, so a crash never leaves a stale lock. Anyone
else (an analyst's DuckDB session, a notebook) holds DuckDB's own lock on the file; DuckDB names the PID.

On a PostgreSQL warehouse (a postgresql:// URL) the writer lock is an advisory lock held by a session of its own,
which the server drops with the session when the process dies; the session's application_name says which kizuna
process holds it. The server lets any number of sessions in, so there is no file to wait for.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from kizuna.core.connection import (
    Connection,
    WarehouseLockedError,
    connect,
    connect_when_free,
    describe_pid,
    holder_from_error,
    is_server_url,
    waiting_message,
)

__all__ = [
    "WarehouseBusyError",
    "connect_once_free",
    "describe_pid",
    "holder_from_error",
    "wait_until_free",
    "writer_lock",
    "writing",
]

log = logging.getLogger(__name__)

WAIT_SETTING = "KIZUNA_WAREHOUSE_WAIT_SECONDS"


class WarehouseBusyError(WarehouseLockedError):
    """The warehouse stayed held past the wait; the message names the holding process."""


def lock_path(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".writer.lock")


def _read_holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another kizuna run"
    if not info:
        return "another kizuna run"
    text = describe_pid(int(info["pid"])) if "pid" in info else "another kizuna run"
    if info.get("flow_run_id"):
        text += f", Prefect flow run {info['flow_run_id']}"
    return text + (f", since {info['since']}" if info.get("since") else "")


@contextmanager
def writer_lock(warehouse: Path | str, *, wait_seconds: float, flow_run_id: str | None = None) -> Iterator[None]:
    """Hold the warehouse's writer lock; wait up to wait_seconds for another run, then WarehouseBusyError."""
    if is_server_url(warehouse):
        with _server_writer_lock(str(warehouse), wait_seconds=wait_seconds, flow_run_id=flow_run_id):
            yield
        return
    warehouse = Path(warehouse)
    path = lock_path(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        delay, attempt = 0.2, 1
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WarehouseBusyError(
                        f"warehouse {warehouse} is being written by {_read_holder(path)}; waited {wait_seconds:.0f} s "
                        f"({WAIT_SETTING}). Let that run finish, or stop it, then run again."
                    ) from None
                if attempt == 1:
                    log.warning("%s", waiting_message(warehouse, _read_holder(path), wait_seconds, WAIT_SETTING))
                time.sleep(min(delay * random.uniform(0.5, 1.0), left))
                delay, attempt = min(delay * 2, 5.0), attempt + 1
        info = {
            "pid": os.getpid(),
            "flow_run_id": flow_run_id,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# The advisory lock's two keys: kizuna's ("kz") and the writer's; pg_locks shows them as classid and objid.
_ADVISORY_KEYS = (0x6B7A, 1)


def _server_holder(session: Connection) -> str:
    row = session.execute(
        "SELECT a.pid, a.application_name, a.backend_start FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid) "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ? AND l.objid = ? AND l.objsubid = 2",
        list(_ADVISORY_KEYS),
    ).fetchone()
    if row is None:
        return "another kizuna run"
    return f"{row[1] or 'a session'} (server process {row[0]}, connected since {row[2]:%Y-%m-%d %H:%M:%S%z})"


@contextmanager
def _server_writer_lock(url: str, *, wait_seconds: float, flow_run_id: str | None) -> Iterator[None]:
    """The writer lock on a PostgreSQL warehouse: an advisory lock on a session held for the whole section."""
    name = f"kizuna pid {os.getpid()}" + (f" run {flow_run_id}" if flow_run_id else "")  # a flow run id fits
    with connect(url) as session:
        session.execute("SELECT set_config('application_name', ?, false)", [name[:63]])  # NAMEDATALEN - 1
        deadline = time.monotonic() + wait_seconds
        delay, attempt = 0.2, 1
        while session.execute("SELECT pg_try_advisory_lock(?, ?)", list(_ADVISORY_KEYS)).fetchone() != (True,):
            left = deadline - time.monotonic()
            if left <= 0:
                raise WarehouseBusyError(
                    f"the PostgreSQL warehouse is being written by {_server_holder(session)}; waited "
                    f"{wait_seconds:.0f} s ({WAIT_SETTING}). Let that run finish, or stop it, then run again."
                )
            if attempt == 1:
                log.warning(
                    "waiting for the warehouse, held by %s; giving up after %.0f s (%s)",
                    _server_holder(session),
                    wait_seconds,
                    WAIT_SETTING,
                )
            time.sleep(min(delay * random.uniform(0.5, 1.0), left))
            delay, attempt = min(delay * 2, 5.0), attempt + 1
        try:
            yield
        finally:
            session.execute("SELECT pg_advisory_unlock(?, ?)", list(_ADVISORY_KEYS))


def wait_until_free(warehouse: Path | str, *, wait_seconds: float) -> None:
    """Return once no other process holds the DuckDB file (it is opened and closed again), or fail naming it.

    For the file's other users (an analyst's session, the event loader): DuckDB lets one process in at a time.
    A PostgreSQL warehouse lets every session in: nothing to wait for.
    """
    if is_server_url(warehouse):
        return
    warehouse = Path(warehouse)
    if not warehouse.exists():
        return
    with connect_once_free(warehouse, wait_seconds=wait_seconds):
        pass


@contextmanager
def connect_once_free(warehouse: Path | str, *, wait_seconds: float) -> Iterator[Connection]:
    """wait_until_free and the connection in one open: a step that writes right after waiting (a campaign)
    keeps the connection the wait opened instead of closing it and opening the file again (≈ 0.1 s each)."""
    if is_server_url(warehouse):
        with connect(warehouse) as server:
            yield server
        return
    warehouse = Path(warehouse)
    stack = ExitStack()
    try:
        con = stack.enter_context(connect_when_free(warehouse, wait_seconds=wait_seconds, setting=WAIT_SETTING))
    except WarehouseLockedError as exc:
        holder = holder_from_error(str(exc)) or "another process"
        raise WarehouseBusyError(
            f"warehouse {warehouse} is held by {holder}; waited {wait_seconds:.0f} s "
            f"({WAIT_SETTING}). Close that session (DuckDB allows one process at a time) and run again."
        ) from exc
    with stack:
        yield con


@contextmanager
def writing(warehouse: Path | str, *, wait_seconds: float, flow_run_id: str | None = None) -> Iterator[None]:
    """For a command that writes the warehouse: the writer lock, then the file free of any other process.

    Both are waited for in the same way (a WARNING naming the holder, then up to wait_seconds); what a CLI
    command wraps in this cannot fail on a held file except by losing a race in the instant after the wait.
    """
    with writer_lock(warehouse, wait_seconds=wait_seconds, flow_run_id=flow_run_id):
        wait_until_free(warehouse, wait_seconds=wait_seconds)
        yield
