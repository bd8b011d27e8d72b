"""The raw-data gate: run the suites on a staged load, quarantine warning rows, compare what would be published
with the last good load, and give a verdict."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.contract import TABLES, TABLES_BY_NAME
from kizuna.core.locks import WAIT_SETTING
from kizuna.core.publish import publish_load
from kizuna.core.settings import Settings
from kizuna.core.warehouse import (
    INCOMING_SCHEMA,
    OPS_SCHEMA,
    RAW_SCHEMA,
    connect,
    connect_when_free,
    mark_rewritten,
    staged_load_id,
    table_exists,
)
from kizuna.quality.changed_rows import forget_changed, is_incremental, keep_out_quarantined
from kizuna.quality.normalise import normalise_column
from kizuna.quality.outliers import outlier_checks
from kizuna.quality.plausibility import drop_checks, exact_duplicates
from kizuna.quality.quarantine import quarantine_rows
from kizuna.quality.records import name_records
from kizuna.quality.report import write_reports
from kizuna.quality.suites import SuiteFile, load_suites
from kizuna.quality.validate import rules_on_context, validate_table
from kizuna.quality.verdict import GateVerdict

log = logging.getLogger(__name__)
_TABLE_ORDER = {t.name: i for i, t in enumerate(TABLES)}


class GateFailedError(RuntimeError):
    """Critical checks failed: nothing was published and the warehouse keeps its previous good state."""

    def __init__(self, verdict: GateVerdict) -> None:
        self.verdict = verdict
        report = f" Report: {verdict.report}" if verdict.report else ""
        super().__init__(
            f"the quality gate stopped load {verdict.load_id}: {len(verdict.critical_failures)} critical "
            f"check(s) failed; the warehouse keeps its previous good state.{report}\n" + verdict.describe_failures()
        )


class GateNotPassedError(RuntimeError):
    """The latest load did not pass the gate: nothing may be sent from this warehouse until one does."""


def gate_parameters(con: Connection, as_of: dt.date, max_drop: float) -> dict[str, Any]:
    """Values the suites compare against (the plausible-date horizon) and the thresholds of this run."""
    return {
        "max_plausible_date": as_of.replace(year=as_of.year + 1, day=28 if as_of.month == 2 else as_of.day).isoformat()
        + "T23:59:59",
        "max_drop": max_drop,
    }


def check_staged(
    con: Connection,
    settings: Settings,
    load_id: str,
    parameters: dict[str, Any],
    progress: Callable[[str], None] | None = None,
    *,
    outlier_factor: float | None,
) -> GateVerdict:
    """Run every raw suite on the staged load, then compare what it would publish with the last good load.

    First, per table in contract order (customers first): normalise harmless variants, look for exact
    duplicate rows, run the suite; rows failing a warning-level expectation leave the staged table for
    quarantine before the next table is checked, so records pointing at a quarantined customer are found as
    orphans in turn. Then, on what is left (what would be published): the drop checks for every table the
    last good load had, and the outlier checks; `outlier_factor` None skips the latter (a person accepted them).
    """
    verdict = GateVerdict(load_id, [], parameters=parameters)
    forget_changed(con)
    # A quarantine left in the incoming schema belongs to this load (ingest replaces the schema): an attempt
    # that passed and was interrupted before publishing. Its rows already left the staged tables: keep it.
    suites = sorted(load_suites(settings.expectations_dir, RAW_SCHEMA), key=lambda s: _TABLE_ORDER.get(s.table, 99))
    for suite in suites:
        if not table_exists(con, INCOMING_SCHEMA, suite.table):
            verdict.skipped_suites.append(suite.name)
            continue
        if progress:
            progress(suite.name)
        keyless_rewritten = False  # equal rows of a keyless table may then hide among unchanged ones
        for column, kind in suite.normalise.items():
            change = normalise_column(con, INCOMING_SCHEMA, suite.table, column, kind)
            if change:
                verdict.normalised.append(change)
                mark_rewritten(con, suite.table)
                keyless_rewritten = TABLES_BY_NAME[suite.table].key is None
        incremental = is_incremental(con, suite.table, settings.full_refresh)
        verdict.results.append(
            exact_duplicates(con, suite.table, suite.name, incremental=incremental and not keyless_rewritten)
        )
        if incremental and suite.table not in verdict.kept_out:
            rechecked = {rule for s in suites if s.table == suite.table for rule in rules_on_context(s, parameters)}
            verdict.kept_out[suite.table] = keep_out_quarantined(con, suite.table, rechecked)
        results = validate_table(
            con,
            INCOMING_SCHEMA,
            suite,
            parameters,
            incremental=incremental,
            checked=verdict.checked_rows,
        )
        name_records(con, suite.table, results)
        file = next((f.file for r in results for f in r.findings), f"{suite.table}.csv")
        verdict.results += results
        moved = quarantine_rows(
            con, load_id, suite.table, file, [r for r in results if not r.success and r.severity == "warning"]
        )
        if moved:  # a table may have several suites (raw_subscriptions, raw_subscriptions_fx_rates): add them up
            verdict.quarantined[suite.table] = verdict.quarantined.get(suite.table, 0) + moved
    # The drop checks are per table: its main suite (raw_<table>) declares the totals, e.g. total MRR.
    by_table: dict[str, SuiteFile] = {}
    for suite in suites:
        if suite.table not in by_table or suite.name == f"{RAW_SCHEMA}_{suite.table}":
            by_table[suite.table] = suite
    verdict.results += drop_checks(con, by_table, verdict.quarantined, float(parameters["max_drop"]))
    if outlier_factor is not None:
        for suite in suites:
            incremental = is_incremental(con, suite.table, settings.full_refresh)
            verdict.results += outlier_checks(con, suite, outlier_factor, incremental=incremental)
    forget_changed(con)
    return verdict


def gate_and_publish(
    settings: Settings,
    as_of: dt.date,
    *,
    accept_drop: bool = False,
    accept_outliers: bool = False,
    progress: Callable[[str], None] | None = None,
    before_publish: Callable[[Connection], object] | None = None,
) -> GateVerdict:
    """Check the staged load; publish it (and its quarantined rows) only when no critical check failed.

    `before_publish` sees the load as it will be published (e.g. to record what it changes on raw_incoming._load).

    On failure the raw schema is untouched (the previous good load stays) and GateFailedError says which
    file, row and column broke which rule. `accept_drop` lets a person confirm a load much smaller than the
    last good one, `accept_outliers` values far beyond it (otherwise both are held as suspicious).
    """
    with connect(settings.warehouse_target) as con:
        load_id = staged_load_id(con)
        if load_id is None:
            raise RuntimeError("nothing is staged: run `kizuna ingest` first")
        parameters = gate_parameters(con, as_of, 1.0 if accept_drop else settings.gate_max_drop)
        parameters["outlier_factor"] = None if accept_outliers else settings.gate_outlier_factor
        # The gate rewrites the staged load (normalising values, moving rows to quarantine): in a transaction
        # that a held load rolls back, so `kizuna check --accept-drop` re-checks the load exactly as staged and
        # no quarantined row of the held attempt is lost.
        con.execute("BEGIN TRANSACTION")
        try:
            verdict = check_staged(
                con, settings, load_id, parameters, progress, outlier_factor=parameters["outlier_factor"]
            )
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT" if verdict.passed else "ROLLBACK")
        verdict.report = str(write_reports(verdict, settings.var_dir / "reports" / "quality"))
        record_verdict(con, verdict)
        if not verdict.passed:
            raise GateFailedError(verdict)
    # The publish on a connection of its own: closing the checks' one gives back DuckDB's buffers of their reads
    # and temp tables, and the heap their frames freed (DuckDB trims it when a database closes). On the checks'
    # connection the publish's transaction grew on top of them: the first run's peak at 1M (issue 22,
    # docs/benchmarks.md "The first run's peak at 1M"). The staged load waits in the file meanwhile.
    with connect_when_free(
        settings.warehouse_target, wait_seconds=settings.warehouse_wait_seconds, setting=WAIT_SETTING
    ) as con:
        if before_publish is not None:
            before_publish(con)
        verdict.published = publish_load(con, load_id)
    return verdict


def record_verdict(con: Connection, verdict: GateVerdict) -> None:
    """Keep every check's outcome in ops.gate_results, for the run summary, audits and the send guard."""
    ops.ensure(con, ops.GATE_RESULTS)
    rows = [
        (verdict.load_id, r.suite, r.table, r.expectation, r.column, r.severity, r.success, r.unexpected_count)
        for r in verdict.results
    ]
    if rows:
        con.executemany(
            f"INSERT INTO {OPS_SCHEMA}.gate_results VALUES (?, timezone('UTC', now()), ?, ?, ?, ?, ?, ?, ?)", rows
        )


def assert_latest_gate_passed(con: Connection) -> None:
    """Refuse to go on (e.g. to send) when the most recently checked load failed a critical check."""
    if not table_exists(con, OPS_SCHEMA, "gate_results"):
        raise GateNotPassedError("no load has passed the quality gate yet: run `kizuna run` (or ingest + check)")
    row = con.execute(
        f"""SELECT load_id, bool_and(success OR severity <> 'critical') AS passed
            FROM {OPS_SCHEMA}.gate_results
            WHERE load_id = (SELECT max(load_id) FROM {OPS_SCHEMA}.gate_results)
            GROUP BY load_id"""
    ).fetchone()
    if row is None or not row[1]:
        load = row[0] if row else "?"
        raise GateNotPassedError(
            f"the latest load ({load}) failed the quality gate: nothing is sent from this warehouse until a load "
            "passes (see var/reports/quality/)"
        )
