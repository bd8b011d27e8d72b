"""One writer at a time: a file lock next to the warehouse, and waiting for (and naming) whoever holds the file.

Two kinds of holder exist. Another kizuna run takes the writer lock (``<warehouse>.writer.lock``, fcntl):
the kernel drops it when that process dies, even by SIGKILL, so a crash never leaves a stale lock. Anyone
else (an analyst's DuckDB session, a notebook) holds DuckDB's own lock on the file; DuckDB names the PID.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from kizuna.warehouse import WarehouseLockedError, connect_when_free

log = logging.getLogger(__name__)

_PID = re.compile(r"\(PID (\d+)\)")


class WarehouseBusyError(WarehouseLockedError):
    """The warehouse stayed held past the wait; the message names the holding process."""


def lock_path(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".writer.lock")


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
def writer_lock(warehouse: Path, *, wait_seconds: float, flow_run_id: str | None = None) -> Iterator[None]:
    """Hold the warehouse's writer lock; wait up to wait_seconds for another run, then WarehouseBusyError."""
    path = lock_path(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        delay = 0.2
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WarehouseBusyError(
                        f"warehouse {warehouse} is being written by {_read_holder(path)}; waited {wait_seconds:.0f} s "
                        "(KIZUNA_WAREHOUSE_WAIT_SECONDS). Let that run finish, or stop it, then run again."
                    ) from None
                log.info("warehouse %s is being written by %s; waiting", warehouse, _read_holder(path))
                time.sleep(min(delay * random.uniform(0.5, 1.0), left))
                delay = min(delay * 2, 5.0)
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


def wait_until_free(warehouse: Path, *, wait_seconds: float) -> None:
    """Return once no other process holds the DuckDB file (it is opened and closed again), or fail naming it.

    For the file's other users (an analyst's session, the event loader): DuckDB lets one process in at a time.
    """
    if not warehouse.exists():
        return
    try:
        with connect_when_free(warehouse, wait_seconds=wait_seconds):
            pass
    except WarehouseLockedError as exc:
        holder = holder_from_error(str(exc)) or "another process"
        raise WarehouseBusyError(
            f"warehouse {warehouse} is held by {holder}; waited {wait_seconds:.0f} s "
            "(KIZUNA_WAREHOUSE_WAIT_SECONDS). Close that session (DuckDB allows one process at a time) and run again."
        ) from exc
