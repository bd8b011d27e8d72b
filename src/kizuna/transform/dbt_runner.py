"""Running `dbt build` in-process on the warehouse, failing loudly on any failed model or test."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from kizuna.core.settings import Settings
from kizuna.transform.builds import recorded

log = logging.getLogger(__name__)

_OK = {"success", "pass"}
_BAD = {"error", "fail", "runtime error"}


@dataclass
class NodeResult:
    name: str
    resource_type: str
    status: str
    message: str | None = None
    seconds: float = 0.0


@dataclass
class BuildResult:
    nodes: list[NodeResult] = field(default_factory=list)
    rebuilt: str | None = None  # which months the incremental models rebuilt, in words (kizuna.pipeline.build)

    @property
    def failed(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status in _BAD]

    def count(self, resource_type: str, statuses: set[str] | None = None) -> int:
        statuses = statuses or _OK
        return sum(1 for n in self.nodes if n.resource_type == resource_type and n.status in statuses)

    @property
    def warnings(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status == "warn"]


class DbtBuildError(RuntimeError):
    """A model failed or a data test found bad rows: the marts must not be used."""

    def __init__(self, result: BuildResult | None, detail: str) -> None:
        self.result = result
        super().__init__(detail)


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    """dbt's profiles.yml reads env_var(); set them only for the duration of the call."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _release_duckdb() -> None:
    """Close the DuckDB instance dbt-duckdb keeps open in this process after a command.

    Left open, it holds the warehouse file until the process exits: later read-only opens in this
    process fail ("different configuration"), other processes find the file locked, and duckdb prints
    "nanobind: leaked" at exit. dbt-duckdb has no public call for this, so we close its environment.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if env is not None:
            env.close()


# The as-of date reaches dbt as an environment variable, read by the as_of macros only when dbt executes: as a
# --vars value, each day's new date would make dbt parse the whole project again (≈ 3.5 s) on every run.
AS_OF_ENV = "KIZUNA_AS_OF"
# The first month the incremental models rebuild (docs/incremental.md), passed the same way for the same reason.
REBUILD_FROM_MONTH_ENV = "KIZUNA_REBUILD_FROM_MONTH"
# Set: the models rebuilt by customer rebuild every customer from this month only, and the customers in
# ops.rebuild_customers from their own month (kizuna.transform.rebuild_plan wrote them).
REBUILD_ALL_CUSTOMERS_FROM_ENV = "KIZUNA_REBUILD_ALL_CUSTOMERS_FROM_MONTH"
# Set: the scoring snapshots rebuild every customer's training snapshots reading this month or later, and the
# customers in ops.rebuild_snapshot_customers from their own month; the scoring snapshot whole. Unset: every one.
REBUILD_SNAPSHOTS_FROM_ENV = "KIZUNA_REBUILD_SNAPSHOTS_FROM_MONTH"
# Set: the data tests declared only_rebuilt_months read the rows from this month (and the customers of
# ops.rebuild_customers from theirs) only: the rest were tested by the good build that wrote them. Unset: every row.
TESTED_FROM_ENV = "KIZUNA_TESTED_FROM_MONTH"


def dbt_env(
    settings: Settings,
    as_of: date,
    rebuild_from_month: date | None = None,
    rebuild_all_customers_from: date | None = None,
    rebuild_snapshots_from: date | None = None,
    tested_from: date | None = None,
) -> dict[str, str]:
    """The environment one dbt command on settings.warehouse as of a date needs (profiles.yml and the macros).

    Without `rebuild_from_month` the incremental models rebuild every month (empty value: unset for the macros);
    without `rebuild_all_customers_from` whole months, with it by customer (ops.rebuild_customers) before it;
    without `tested_from` every data test reads every row.
    """
    return {
        **_warehouse_env(settings),
        "DO_NOT_TRACK": "1",
        AS_OF_ENV: as_of.isoformat(),
        REBUILD_FROM_MONTH_ENV: rebuild_from_month.replace(day=1).isoformat() if rebuild_from_month else "",
        REBUILD_ALL_CUSTOMERS_FROM_ENV: (
            rebuild_all_customers_from.replace(day=1).isoformat() if rebuild_all_customers_from else ""
        ),
        REBUILD_SNAPSHOTS_FROM_ENV: rebuild_snapshots_from.replace(day=1).isoformat() if rebuild_snapshots_from else "",
        TESTED_FROM_ENV: tested_from.replace(day=1).isoformat() if tested_from else "",
    }


def _warehouse_env(settings: Settings) -> dict[str, str]:
    """What profiles.yml reads to reach the warehouse: the DuckDB file, or the `postgres` target's KIZUNA_PG_*."""
    if settings.warehouse_url is None:
        return {"KIZUNA_WAREHOUSE": str(Path(settings.warehouse).resolve())}
    url = urlsplit(settings.warehouse_url.get_secret_value())
    return {
        "KIZUNA_PG_HOST": unquote(url.hostname or "127.0.0.1"),
        "KIZUNA_PG_PORT": str(url.port or 5432),
        "KIZUNA_PG_USER": unquote(url.username or ""),
        "KIZUNA_PG_PASSWORD": unquote(url.password or ""),
        "KIZUNA_PG_DBNAME": unquote(url.path.lstrip("/")),
    }


def dbt_target(settings: Settings) -> str:
    """The profiles.yml output dbt builds with: `dev` (the DuckDB file) or `postgres` (a server warehouse)."""
    return "dev" if settings.warehouse_url is None else "postgres"


def dbt_args(settings: Settings, command: str, extra: list[str] | None = None) -> list[str]:
    """Arguments of one dbt command on this project (run it inside dbt_env(): the as-of date is there)."""
    # Absolute: PrefectDbtRunner resolves a relative --target-path against the dbt project, not the cwd.
    target = (settings.var_dir / "dbt").resolve()
    args = [
        command,
        "--project-dir",
        str(settings.dbt_project_dir),
        "--profiles-dir",
        str(settings.dbt_project_dir),
        "--target-path",
        str(target / "target"),
        "--log-path",
        str(target / "logs"),
        "--target",
        dbt_target(settings),
    ]
    if not sys.stdout.isatty():
        # dbt colours its output even into a pipe or a file (the run log): raw escape codes there.
        args.append("--no-use-colors")
    return [*args, *(extra or [])]


def run_results_path(settings: Settings) -> Path:
    return (settings.var_dir / "dbt").resolve() / "target" / "run_results.json"


PARSED_FROM = "kizuna-parsed-from"  # beside dbt's saved parse: the dbt project directory it was parsed from


def forget_parse_of_another_checkout(settings: Settings) -> None:
    """Drop dbt's saved parse (partial_parse.msgpack under var/) when it was made from another project directory.

    The saved parse names the project's files by absolute path, and dbt does not check that they are still there:
    with var/ kept across an upgrade into a new checkout, a seed was read from the old, deleted one. The next
    command parses the project whole once (a few seconds) and saves a parse of this checkout.
    """
    target = run_results_path(settings).parent
    project = str(settings.dbt_project_dir.resolve())
    marker = target / PARSED_FROM
    try:
        parsed_from: str | None = marker.read_text(encoding="utf-8")
    except OSError:
        parsed_from = None
    if parsed_from != project:
        (target / "partial_parse.msgpack").unlink(missing_ok=True)
        target.mkdir(parents=True, exist_ok=True)
        marker.write_text(project, encoding="utf-8")


# An invoker runs one dbt command and returns why dbt could not run at all, or None. Node failures are read
# from run_results.json afterwards, whichever invoker ran: plain dbtRunner here, PrefectDbtRunner in flows/.
Invoker = Callable[[list[str]], str | None]


def plain_invoker(on_node: Callable[[NodeResult], None] | None = None) -> Invoker:
    """dbt's own programmatic runner, in this process, with an optional per-node callback (the CLI's progress)."""

    def invoke(args: list[str]) -> str | None:
        from dbt.cli.main import dbtRunner

        def callback(event: Any) -> None:
            if on_node is None or event.info.name != "NodeFinished":
                return
            node = event.data.node_info
            on_node(NodeResult(node.unique_id, node.resource_type, node.node_status))

        outcome = dbtRunner(callbacks=[callback]).invoke(args)
        return None if outcome.exception is None else str(outcome.exception)

    return invoke


def read_run_results(path: Path) -> list[NodeResult]:
    """The nodes of the last dbt command, from its run_results.json ([] when dbt wrote none)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [
        NodeResult(
            r["unique_id"],
            r["unique_id"].split(".", 1)[0],
            str(r["status"]),
            r.get("message"),
            float(r.get("execution_time") or 0.0),
        )
        for r in doc.get("results", [])
    ]


LOCK_MESSAGE = "Could not set lock on file"


def is_lock_failure(error: str | None, failed: list[NodeResult]) -> bool:
    """True when dbt failed only because another process held the DuckDB file: transient, worth a retry."""
    texts = [error] if error else []
    texts += [n.message or "" for n in failed]
    return bool(texts) and all(LOCK_MESSAGE in t for t in texts)


@recorded  # each build's outcome goes to ops.dbt_builds: campaigns send nothing after a failed build
def build(
    settings: Settings,
    as_of: date,
    select: str | None = None,
    on_node: Callable[[NodeResult], None] | None = None,
    *,
    invoke: Invoker | None = None,
    rebuild_from_month: date | None = None,
    rebuild_all_customers_from: date | None = None,
    rebuild_snapshots_from: date | None = None,
    tested_from: date | None = None,
    fingerprint: str | None = None,
    rebuilt: str | None = None,
) -> BuildResult:
    """`dbt build` (models, then their tests) on settings.warehouse as of a date; raise on any failure.

    The incremental models (docs/incremental.md) keep the months before `rebuild_from_month` (the earliest month a
    change since the last build touches) and rebuild the rest; without it they rebuild every month, and with
    settings.full_refresh (`--full-refresh`) dbt builds them from nothing. With `rebuild_all_customers_from` the
    models rebuilt by customer keep every month before it but those of the customers in ops.rebuild_customers; with `rebuild_snapshots_from` the scoring snapshots rebuild by customer
    (ops.rebuild_snapshot_customers); with `tested_from` the data tests declared only_rebuilt_months read the rows
    from that month only (and the rebuilt customers'). `fingerprint` and `rebuilt` are only
    recorded with the build in ops.dbt_builds (kizuna.transform.rebuild_plan decides them).

    Failures caused only by a held DuckDB file are retried (settings.dbt_lock_retries) with `dbt retry`, which
    re-runs the failed and skipped nodes and leaves finished ones alone. A failed model or data test is never
    retried: it raises DbtBuildError at once.
    """
    invoke = invoke or plain_invoker(on_node)
    results_path = run_results_path(settings)
    results_path.unlink(missing_ok=True)  # a stale file must not be read as this build's results
    forget_parse_of_another_checkout(settings)
    extra = ["--select", select] if select else []
    if not settings.dbt_unit_tests:
        # Unit tests check the SQL's logic against fixed inputs: they belong to CI (`make test` runs them),
        # not to every production build. Data tests, which check today's data, always run.
        extra += ["--exclude-resource-type", "unit_test"]
    if settings.full_refresh:
        extra.append("--full-refresh")
    args = dbt_args(settings, "build", extra)
    env = dbt_env(settings, as_of, rebuild_from_month, rebuild_all_customers_from, rebuild_snapshots_from, tested_from)
    nodes: dict[str, NodeResult] = {}
    error: str | None = None
    for attempt in range(settings.dbt_lock_retries + 1):
        with _env(env):
            try:
                error = invoke(args)
            finally:
                _release_duckdb()
        for node in read_run_results(results_path):
            nodes[node.name] = node  # a retry's answer replaces the failed one; finished nodes stay
        result = BuildResult(list(nodes.values()))
        if not is_lock_failure(error, result.failed) or attempt == settings.dbt_lock_retries:
            break
        log.warning(
            "dbt build: the warehouse was locked by another process; `dbt retry` in %.0f s (attempt %d of %d)",
            settings.dbt_lock_retry_delay_seconds,
            attempt + 1,
            settings.dbt_lock_retries,
        )
        time.sleep(settings.dbt_lock_retry_delay_seconds)
        # dbt retry needs the failed command's run_results.json; without one (dbt stopped before any node), rebuild.
        args = dbt_args(settings, "retry") if results_path.exists() else args
    result = BuildResult(list(nodes.values()))
    if error is not None and not result.failed:
        raise DbtBuildError(result, f"dbt could not run: {error}")
    if result.failed or error is not None:
        lines = failure_lines(settings, result)
        raise DbtBuildError(result, "dbt build failed; the marts are not to be used:\n  " + "\n  ".join(lines))
    return result


def failure_lines(settings: Settings, result: BuildResult) -> list[str]:
    """The failed nodes in plain words with example rows (kizuna.transform.dbt_failures); dbt's own words for the rest."""
    from kizuna.transform import dbt_failures

    path = run_results_path(settings)
    try:
        entries = json.loads(path.read_text(encoding="utf-8")).get("results", [])
    except (OSError, ValueError):
        entries = []
    described = dbt_failures.describe(path.parent, settings.warehouse_target, entries)
    seen = {f.node_id for f in described}
    lines = [line for failure in described for line in failure.lines()]
    lines += [f"{n.name}: {n.status}: {n.message}" for n in result.failed if n.name not in seen]
    for n in result.failed:  # the run log keeps dbt's ids and words beside ours
        log.error("failed dbt node %s: %s", n.name, n.message)
    return lines
