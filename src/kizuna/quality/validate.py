"""Running one Great Expectations suite on one table as a pandas frame, with findings that name file and row."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from kizuna.quality.suites import SuiteFile
from kizuna.sources.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN, TABLES_BY_NAME, ColumnType
from kizuna.sources.errors import Finding

SAMPLE_ROWS = 5


@dataclass
class CheckResult:
    """One expectation's outcome; `rows` holds every offending source row (for quarantine)."""

    suite: str
    table: str
    expectation: str
    column: str | None
    rule: str
    severity: str
    success: bool
    unexpected_count: int = 0
    findings: list[Finding] = field(default_factory=list)
    rows: list[tuple[int, str]] = field(default_factory=list)  # (source row, offending value)


def load_frame(con: duckdb.DuckDBPyConnection, schema: str, suite: SuiteFile) -> pd.DataFrame:
    """The table as pandas (money as float so numeric expectations compare plainly), plus the suite's
    derived columns, computed in DuckDB (e.g. whether a customer_id exists in the same load)."""
    contract = TABLES_BY_NAME[suite.table]
    cols = []
    for c in contract.columns:
        if c.type is ColumnType.MONEY:
            cols.append(f'"{c.name}"::DOUBLE AS "{c.name}"')
        else:
            cols.append(f'"{c.name}"')
    for name, sql in suite.derived_columns.items():
        cols.append(f'({sql.format(schema=schema)}) AS "{name}"')
    cols += [SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN]
    frame = con.execute(f'SELECT {", ".join(cols)} FROM {schema}."{suite.table}"').df()
    for c in contract.columns:
        if c.type in (ColumnType.DATE, ColumnType.TIMESTAMP):
            # GX compares datetime64[ns] columns with ISO-string bounds vectorised and NULL-safe; DuckDB hands
            # out datetime64[us], which falls to a per-value path that errors on NULLs.
            frame[c.name] = frame[c.name].astype("datetime64[ns]")
    return frame


def plain(value: Any) -> str:
    """A value as a person would type it: 5 not 5.0, no numpy wrappers, 'empty' for missing."""
    if value is None or (not isinstance(value, str | list | dict) and pd.isna(value)):
        return "empty"
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return repr(value) if isinstance(value, str) else str(value)


def describe_rule(etype: str, kwargs: dict[str, Any], parameters: dict[str, Any]) -> str:
    """The expectation in words a person fixing the file understands."""

    def value(key: str) -> Any:
        v = kwargs.get(key)
        return parameters.get(v["$PARAMETER"]) if isinstance(v, dict) and "$PARAMETER" in v else v

    lo, hi = value("min_value"), value("max_value")
    bounds = (
        f">= {plain(lo)}" if hi is None else f"<= {plain(hi)}" if lo is None else f"between {plain(lo)} and {plain(hi)}"
    )
    if etype == "expect_column_values_to_be_unique":
        return "duplicate value"
    if etype == "expect_column_values_to_not_be_null":
        return "value is empty"
    if etype == "expect_column_values_to_be_between":
        return f"value must be {bounds}"
    if etype == "expect_column_values_to_be_in_set":
        return f"value must be one of {', '.join(map(str, kwargs.get('value_set', [])))}"
    if etype == "expect_column_values_to_match_regex":
        return "value is not well formed"
    if etype == "expect_column_pair_values_a_to_be_greater_than_b":
        return f"{kwargs.get('column_A')} must be after {kwargs.get('column_B')}"
    if etype == "expect_table_row_count_to_be_between":
        return f"row count must be {bounds}"
    if etype == "expect_column_sum_to_be_between":
        return f"total of {kwargs.get('column')} must be {bounds}"
    return etype.replace("_", " ")


def _column(kwargs: dict[str, Any], meta: dict[str, Any]) -> str | None:
    if meta.get("column"):
        return str(meta["column"])
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    return None


def _offending_rows(result: Any, frame: pd.DataFrame, column: str | None) -> list[tuple[int, str]]:
    """(source row, value) for every row an expectation rejected, the value read from the reported column."""
    indexes = (result.result or {}).get("unexpected_index_list") or []
    rows = [int(item[SOURCE_ROW_COLUMN]) for item in indexes if isinstance(item, dict) and SOURCE_ROW_COLUMN in item]
    if not rows:
        return []
    shown = [c.strip() for c in column.split(",")] if column else []
    shown = [c for c in shown if c in frame.columns]
    picked = frame.loc[frame[SOURCE_ROW_COLUMN].isin(rows), [SOURCE_ROW_COLUMN, *shown]]
    values = {int(r[SOURCE_ROW_COLUMN]): ", ".join(plain(r[c]) for c in shown) for r in picked.to_dict("records")}
    return [(row, values.get(row, "")) for row in rows]


def _raised(info: Any) -> str | None:
    """The exception message GX recorded for a result, at top level or per metric; None if it ran."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        nested = _raised(value)
        if nested:
            return nested
    return None


def run_suite(suite: SuiteFile, frame: pd.DataFrame, parameters: dict[str, Any], file: str) -> list[CheckResult]:
    """Validate the frame with the suite in an ephemeral Great Expectations context."""
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
        expectation_parameters=parameters,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [SOURCE_ROW_COLUMN]},
    )
    checks = []
    for r in outcome.results:
        config = r.expectation_config
        assert config is not None  # GX fills it for every result of a suite run
        problem = _raised(r.exception_info)
        if problem:
            # An expectation that could not run has checked nothing: that must stop the gate, not pass it.
            raise RuntimeError(f"{suite.path}: expectation {config.type} could not run: {problem}")
        meta = dict(config.meta or {})
        column = _column(config.kwargs, meta)
        rule = meta.get("rule") or describe_rule(config.type, config.kwargs, parameters)
        rows = [] if r.success else _offending_rows(r, frame, column)
        findings = [Finding(file, row, column, f"{rule} (found {value})") for row, value in rows[:SAMPLE_ROWS]]
        if not r.success and not rows:
            observed = (r.result or {}).get("observed_value")
            findings = [Finding(file, None, column, f"{rule} (found {plain(observed)})")]
        checks.append(
            CheckResult(
                suite=suite.name,
                table=suite.table,
                expectation=config.type,
                column=column,
                rule=rule,
                severity=str(meta.get("severity", "critical")),
                success=bool(r.success),
                unexpected_count=int((r.result or {}).get("unexpected_count") or 0),
                findings=findings,
                rows=rows,
            )
        )
    return checks
