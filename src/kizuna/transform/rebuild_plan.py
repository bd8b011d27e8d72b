"""Which months a dbt build rebuilds: from the loads published since the last good build (docs/incremental.md)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import yaml

from kizuna.core import ops
from kizuna.core.warehouse import INCOMING_SCHEMA, OPS_SCHEMA, RAW_SCHEMA, column_exists, table_exists
from kizuna.transform.rebuild_months import READ_TABLES, earliest_month_changed

# The staged load's column (then ops.loads') with the earliest month it changes; NULL when unknown.
MONTH_COLUMN = "rebuild_from_month"

_INCREMENTAL = re.compile(r"materialized\s*=\s*['\"]incremental['\"]")
_REF = re.compile(r"ref\(\s*['\"]([A-Za-z0-9_]+)['\"]\s*\)")
_VAR = re.compile(r"var\(\s*['\"]([A-Za-z0-9_]+)['\"]")


@dataclass(frozen=True)
class RebuildPlan:
    """What one build rebuilds: from `month` on (None: every month), from nothing when `full_refresh`."""

    month: date | None
    fingerprint: str
    reason: str = ""
    full_refresh: bool = False

    def describe(self) -> str:
        """One line for the run log and the summary: "rebuilt from 2025-03" or "all months: <reason>"."""
        if self.month is not None:
            return f"rebuilt from {self.month:%Y-%m}" + (f" ({self.reason})" if self.reason else "")
        return f"all months{' from nothing' if self.full_refresh else ''}: {self.reason}"


def record_staged_month(con: duckdb.DuckDBPyConnection, as_of: date) -> date | None:
    """Before a staged load is published: the earliest month it changes against raw, kept on raw_incoming._load
    (publish_incoming copies it into ops.loads). None, recorded as NULL (every month), on a first load."""
    month = None
    if all(table_exists(con, RAW_SCHEMA, table) for table in READ_TABLES):
        month = earliest_month_changed(con, RAW_SCHEMA, INCOMING_SCHEMA, as_of)
    con.execute(f"ALTER TABLE {INCOMING_SCHEMA}._load ADD COLUMN IF NOT EXISTS {MONTH_COLUMN} DATE")
    con.execute(f"UPDATE {INCOMING_SCHEMA}._load SET {MONTH_COLUMN} = ?", [month])
    return month


def fingerprint(project_dir: Path) -> str:
    """A hash of what the incremental models compute with: their SQL and that of every model and seed they read
    (through ref, transitively), every macro, and the values of the dbt vars these use. A build whose fingerprint
    differs from the last good build's rebuilds the incremental tables from nothing."""
    models = {p.stem: p for p in sorted((project_dir / "models").rglob("*.sql"))}
    seeds = {p.stem: p for p in sorted((project_dir / "seeds").glob("*.csv"))}
    todo = [name for name, path in models.items() if _INCREMENTAL.search(path.read_text(encoding="utf-8"))]
    files: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        path = models.get(name) or seeds.get(name)
        if path is None or name in files:
            continue
        files[name] = path
        if path.suffix == ".sql":
            todo += _REF.findall(path.read_text(encoding="utf-8"))
    macros = sorted((project_dir / "macros").rglob("*.sql"))
    seed_config = sorted((project_dir / "seeds").glob("*.yml"))
    paths = sorted({*files.values(), *macros, *seed_config})
    digest = hashlib.sha256()
    used_vars: set[str] = set()
    for path in paths:
        text = path.read_text(encoding="utf-8")
        used_vars.update(_VAR.findall(text))
        digest.update(f"{path.relative_to(project_dir)}\0{text}\0".encode())
    project = yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8")) or {}
    values = {name: (project.get("vars") or {}).get(name) for name in sorted(used_vars)}
    digest.update(json.dumps(values, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def plan(con: duckdb.DuckDBPyConnection, project_dir: Path, as_of: date, *, full_refresh: bool = False) -> RebuildPlan:
    """The months the next build rebuilds: from the earliest month of every load published since the last good
    whole build; every month when that is not known, and from nothing when asked or when the fingerprint changed."""
    current = fingerprint(project_dir)
    if full_refresh:
        return RebuildPlan(None, current, "--full-refresh", full_refresh=True)
    last = _last_good_build(con)
    if last is None:
        return RebuildPlan(None, current, "no successful build recorded on this warehouse")
    started_at, previous = last
    if previous != current:
        why = (
            "the last good build recorded no fingerprint"
            if previous is None
            else f"the incremental models' SQL or vars changed since the last good build ({previous} → {current})"
        )
        return RebuildPlan(None, current, why, full_refresh=True)
    if not table_exists(con, OPS_SCHEMA, "loads") or not column_exists(con, OPS_SCHEMA, "loads", MONTH_COLUMN):
        return RebuildPlan(as_of.replace(day=1), current, "no load since the last good build")
    loads = con.execute(
        f"""SELECT load_id, min({MONTH_COLUMN}), bool_or({MONTH_COLUMN} IS NULL) FROM {ops.LOADS}
            WHERE published_at >= ? GROUP BY load_id ORDER BY load_id""",
        [started_at],
    ).fetchall()
    unknown = [str(load_id) for load_id, _, is_unknown in loads if is_unknown]
    if unknown:
        return RebuildPlan(
            None, current, f"load {unknown[0]} has no month recorded (a first load, or one an older kizuna published)"
        )
    month = min([as_of.replace(day=1), *(m for _, m, _ in loads)])
    reason = f"{len(loads)} load{'s' if len(loads) != 1 else ''} since the last good build" if loads else ""
    return RebuildPlan(month, current, reason or "no load since the last good build")


def _last_good_build(con: duckdb.DuckDBPyConnection) -> tuple[object, str | None] | None:
    """(started_at, fingerprint) of the latest passed build of every model (not a --select), or None."""
    if not table_exists(con, OPS_SCHEMA, "dbt_builds"):
        return None
    ops.ensure(con, ops.DBT_BUILDS)  # the fingerprint column on a table an older kizuna created
    row = con.execute(
        f"""SELECT started_at, fingerprint FROM {ops.DBT_BUILDS}
            WHERE status = 'passed' AND selector IS NULL ORDER BY started_at DESC LIMIT 1"""
    ).fetchone()
    return (row[0], row[1]) if row else None
