"""Each dbt build's outcome in ops.dbt_builds, so nothing is sent from marts whose latest build failed."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import date
from typing import Concatenate, ParamSpec, TypeVar

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.settings import Settings
from kizuna.core.warehouse import OPS_SCHEMA, connect, table_exists

log = logging.getLogger(__name__)

# What a failed build's detail keeps: enough for the failed nodes' names, not a whole log.
DETAIL_CHARS = 2_000

P = ParamSpec("P")
R = TypeVar("R")


class BuildNotPassedError(RuntimeError):
    """The latest dbt build failed or never finished: its marts may be half-built or stale."""


def ensure_builds(con: Connection) -> None:
    ops.ensure(con, ops.DBT_BUILDS)


def start(
    con: Connection,
    as_of: date,
    selector: str | None = None,
    *,
    fingerprint: str | None = None,
    rebuild_from_month: date | None = None,
    rebuilt: str | None = None,
) -> str:
    """Record a build as running (a build killed midway stays so, and counts as not passed); returns its id.

    `fingerprint` is that of the incremental models' SQL and vars (kizuna.transform.rebuild_plan), `rebuilt` the
    months the build rebuilds in words; the next build compares the fingerprint with the last passed build's."""
    ensure_builds(con)
    build_id = uuid.uuid4().hex
    con.execute(
        f"""INSERT INTO {ops.DBT_BUILDS.name}
                (build_id, as_of, selector, started_at, status, fingerprint, rebuild_from_month, rebuilt)
            VALUES (?, ?, ?, timezone('UTC', now()), 'running', ?, ?, ?)""",
        [build_id, as_of, selector, fingerprint, rebuild_from_month, rebuilt],
    )
    return build_id


def finish(con: Connection, build_id: str, *, passed: bool, detail: str | None = None) -> None:
    ensure_builds(con)
    con.execute(
        f"UPDATE {ops.DBT_BUILDS.name} SET status = ?, finished_at = timezone('UTC', now()), detail = ? WHERE build_id = ?",
        ["passed" if passed else "failed", (detail or None) and str(detail)[:DETAIL_CHARS], build_id],
    )


def recorded(
    build: Callable[Concatenate[Settings, date, P], R],
) -> Callable[Concatenate[Settings, date, P], R]:
    """Wrap `dbt build` (settings, as_of, ...) so each one is recorded in ops.dbt_builds: running, then passed or
    failed. A recording that cannot open the warehouse is logged and skipped: it never changes the build's
    outcome, and a build it missed leaves the previous record latest, or a 'running' one that refuses sends."""

    @functools.wraps(build)
    def wrapper(settings: Settings, as_of: date, *args: P.args, **kwargs: P.kwargs) -> R:
        selector, month = kwargs.get("select"), kwargs.get("rebuild_from_month")
        fingerprint, rebuilt = kwargs.get("fingerprint"), kwargs.get("rebuilt")
        build_id = _quietly(
            lambda con: start(
                con,
                as_of,
                selector if isinstance(selector, str) else None,
                fingerprint=fingerprint if isinstance(fingerprint, str) else None,
                rebuild_from_month=month if isinstance(month, date) else None,
                rebuilt=rebuilt if isinstance(rebuilt, str) else None,
            ),
            settings,
        )
        try:
            result = build(settings, as_of, *args, **kwargs)
        except BaseException as exc:
            detail = str(exc) or type(exc).__name__
            if build_id:
                _quietly(lambda con: finish(con, build_id, passed=False, detail=detail), settings)
            raise
        if build_id:
            _quietly(lambda con: finish(con, build_id, passed=True), settings)
        return result

    return wrapper


def _quietly(write: Callable[[Connection], str | None], settings: Settings) -> str | None:
    try:
        with connect(settings.warehouse_target) as con:
            return write(con)
    except Exception as exc:  # e.g. another process holds the file: dbt will say so itself
        log.warning("could not record the dbt build in %s: %s", ops.DBT_BUILDS.name, exc)
        return None


def assert_latest_build_passed(con: Connection) -> None:
    """Refuse to go on (e.g. to send) unless the most recent dbt build on this warehouse passed."""
    row = (
        con.execute(
            f"""SELECT status, started_at, finished_at, as_of, detail
                FROM {ops.DBT_BUILDS.name} ORDER BY started_at DESC, finished_at DESC NULLS FIRST LIMIT 1"""
        ).fetchone()
        if table_exists(con, OPS_SCHEMA, "dbt_builds")
        else None
    )
    if row is None:
        raise BuildNotPassedError(
            "no dbt build is recorded on this warehouse: nothing is sent until one passes (`kizuna build` or "
            "`kizuna run`)"
        )
    status, started_at, finished_at, as_of, detail = row
    started, finished = (f"{t:%Y-%m-%d %H:%M}" if t else None for t in (started_at, finished_at))
    if status == "passed":
        return
    if status == "running":
        raise BuildNotPassedError(
            f"the latest dbt build (started {started} UTC, as of {as_of}) never finished (still running, or "
            "stopped): nothing is sent from its marts until a build passes (`kizuna build`)"
        )
    first = " ".join(str(detail or "no detail").split())[:300]
    raise BuildNotPassedError(
        f"the latest dbt build failed at {finished} UTC (as of {as_of}): {first}; nothing is sent from the "
        "marts until a build passes (`kizuna build`)"
    )
