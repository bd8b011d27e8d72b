"""The raw-data gate: run the Great Expectations suites on a staged load and give a verdict."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from kizuna.quality.suites import SuiteFile, load_suites
from kizuna.settings import Settings
from kizuna.sources.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN, TABLES_BY_NAME, ColumnType
from kizuna.sources.errors import Finding
from kizuna.warehouse import (
    INCOMING_SCHEMA,
    OPS_SCHEMA,
    RAW_SCHEMA,
    connect,
    publish_incoming,
    staged_load_id,
    table_exists,
)

log = logging.getLogger(__name__)
SAMPLE_ROWS = 5


@dataclass
class CheckResult:
    suite: str
    table: str
    expectation: str
    column: str | None
    severity: str
    success: bool
    unexpected_count: int = 0
    findings: list[Finding] = field(default_factory=list)


@dataclass
class GateVerdict:
    """Whether the load may go on; critical failures stop it, warnings are reported."""

    load_id: str
    results: list[CheckResult]
    skipped_suites: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.critical_failures

    @property
    def critical_failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success and r.severity == "critical"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success and r.severity == "warning"]

    def describe_failures(self) -> str:
        lines = []
        for r in self.critical_failures + self.warnings:
            lines.append(
                f"[{r.severity}] {r.suite}: {r.expectation} on {r.column or r.table}: {r.unexpected_count} rows"
            )
            lines += [f"    {f}" for f in r.findings]
        return "\n".join(lines)


class GateFailedError(RuntimeError):
    """Critical checks failed: nothing was published and the warehouse keeps its previous good state."""

    def __init__(self, verdict: GateVerdict) -> None:
        self.verdict = verdict
        super().__init__(
            f"the quality gate stopped load {verdict.load_id}: {len(verdict.critical_failures)} critical "
            "check(s) failed; the warehouse keeps its previous good state.\n" + verdict.describe_failures()
        )


def _frame(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> pd.DataFrame:
    """The table as pandas, money as float so numeric expectations compare plainly."""
    contract = TABLES_BY_NAME[table]
    cols = []
    for c in contract.columns:
        if c.type is ColumnType.MONEY:
            cols.append(f'"{c.name}"::DOUBLE AS "{c.name}"')
        else:
            cols.append(f'"{c.name}"')
    cols += [SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN]
    return con.execute(f'SELECT {", ".join(cols)} FROM {schema}."{table}"').df()


def _expectation_column(config: dict[str, Any]) -> str | None:
    kwargs = config.get("kwargs", {})
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    return None


def _plain(value: Any) -> str:
    """A value as a person would type it: 5 not 5.0, no numpy wrappers, 'empty' for missing."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "empty"
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return repr(value) if isinstance(value, str) else str(value)


def describe_rule(etype: str, kwargs: dict[str, Any]) -> str:
    """The expectation in words a person fixing the file understands."""
    if etype == "expect_column_values_to_be_unique":
        return "duplicate value"
    if etype == "expect_column_values_to_not_be_null":
        return "value is empty"
    if etype == "expect_column_values_to_be_between":
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        bounds = (
            f">= {_plain(lo)}"
            if hi is None
            else f"<= {_plain(hi)}"
            if lo is None
            else f"between {_plain(lo)} and {_plain(hi)}"
        )
        return f"value must be {bounds}"
    if etype == "expect_column_values_to_be_in_set":
        return f"value must be one of {', '.join(map(str, kwargs.get('value_set', [])))}"
    if etype == "expect_column_values_to_match_regex":
        return "value is not well formed"
    if etype == "expect_column_pair_values_a_to_be_greater_than_b":
        return f"{kwargs.get('column_A')} must be after {kwargs.get('column_B')}"
    return etype.replace("_", " ")


def _findings(result: Any, file: str, column: str | None, rule: str) -> list[Finding]:
    indexes = (result.result or {}).get("unexpected_index_list") or []
    out = []
    for item in indexes[:SAMPLE_ROWS]:
        if not isinstance(item, dict):
            continue
        row = item.get(SOURCE_ROW_COLUMN)
        values = {k: v for k, v in item.items() if k != SOURCE_ROW_COLUMN}
        shown = ", ".join(_plain(v) for v in values.values())
        out.append(Finding(file, int(row) if row is not None else None, column, f"{rule} (found {shown})"))
    return out


def _run_suite(suite: SuiteFile, frame: pd.DataFrame, file: str) -> list[CheckResult]:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    gx_suite = ctx.suites.add(
        gx.ExpectationSuite(
            name=suite.name,
            expectations=[
                ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e.get("meta")).to_domain_obj()
                for e in suite.expectations
            ],
        )
    )
    asset = ctx.data_sources.add_pandas(f"{suite.schema}_{suite.table}").add_dataframe_asset(suite.table)
    definition = gx.ValidationDefinition(
        name=suite.name, data=asset.add_batch_definition_whole_dataframe("whole"), suite=gx_suite
    )
    outcome = definition.run(
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [SOURCE_ROW_COLUMN]},
    )
    checks = []
    for r in outcome.results:
        config = r.expectation_config
        assert config is not None  # GX fills it for every result of a suite run
        column = _expectation_column({"kwargs": config.kwargs})
        raised = (r.exception_info or {}).get("raised_exception")
        if raised:
            message = (r.exception_info or {}).get("exception_message")
            raise RuntimeError(f"{suite.path}: expectation {config.type} could not run: {message}")
        checks.append(
            CheckResult(
                suite=suite.name,
                table=suite.table,
                expectation=config.type,
                column=column,
                severity=(config.meta or {}).get("severity", "critical"),
                success=bool(r.success),
                unexpected_count=int((r.result or {}).get("unexpected_count") or 0),
                findings=[] if r.success else _findings(r, file, column, describe_rule(config.type, config.kwargs)),
            )
        )
    return checks


def check_staged(
    con: duckdb.DuckDBPyConnection,
    expectations_dir: Path,
    load_id: str,
    progress: Callable[[str], None] | None = None,
) -> GateVerdict:
    """Run every raw suite against the staged load in the incoming schema."""
    results: list[CheckResult] = []
    skipped: list[str] = []
    for suite in load_suites(expectations_dir, RAW_SCHEMA):
        if not table_exists(con, INCOMING_SCHEMA, suite.table):
            skipped.append(suite.name)
            continue
        if progress:
            progress(suite.name)
        frame = _frame(con, INCOMING_SCHEMA, suite.table)
        file = str(frame[SOURCE_FILE_COLUMN].iloc[0]) if len(frame) else f"{suite.table}.csv"
        results += _run_suite(suite, frame, file)
    return GateVerdict(load_id, results, skipped)


def write_report(verdict: GateVerdict, reports_dir: Path) -> Path:
    """The verdict as JSON, for the run summary and for people."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"gate-{verdict.load_id}.json"
    doc = {"load_id": verdict.load_id, "passed": verdict.passed, "skipped_suites": verdict.skipped_suites}
    doc["results"] = [{**asdict(r), "findings": [str(f) for f in r.findings]} for r in verdict.results]
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return path


def gate_and_publish(settings: Settings, progress: Callable[[str], None] | None = None) -> GateVerdict:
    """Check the staged load; publish it to raw only when no critical check failed.

    On failure the raw schema is untouched (the previous good load stays) and GateFailedError says
    which file, row and column broke which rule.
    """
    with connect(settings.warehouse) as con:
        load_id = staged_load_id(con)
        if load_id is None:
            raise RuntimeError("nothing is staged: run `kizuna ingest` first")
        verdict = check_staged(con, settings.expectations_dir, load_id, progress)
        write_report(verdict, settings.var_dir / "reports")
        record_verdict(con, verdict)
        if not verdict.passed:
            raise GateFailedError(verdict)
        publish_incoming(con, load_id)
    return verdict


def record_verdict(con: duckdb.DuckDBPyConnection, verdict: GateVerdict) -> None:
    """Keep every check's outcome in ops.gate_results, for the run summary and for audits."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {OPS_SCHEMA}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {OPS_SCHEMA}.gate_results (load_id VARCHAR, checked_at TIMESTAMP, "
        "suite VARCHAR, table_name VARCHAR, expectation VARCHAR, column_name VARCHAR, severity VARCHAR, "
        "success BOOLEAN, unexpected_count BIGINT)"
    )
    rows = [
        (verdict.load_id, r.suite, r.table, r.expectation, r.column, r.severity, r.success, r.unexpected_count)
        for r in verdict.results
    ]
    if rows:
        con.executemany(
            f"INSERT INTO {OPS_SCHEMA}.gate_results VALUES (?, timezone('UTC', now()), ?, ?, ?, ?, ?, ?, ?)", rows
        )
