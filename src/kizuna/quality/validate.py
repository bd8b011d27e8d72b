"""Running one Great Expectations suite on one table as a pandas frame, with findings that name file and row."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from kizuna.core.connection import Connection
from kizuna.core.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN, TABLES_BY_NAME, ColumnType
from kizuna.core.errors import Finding
from kizuna.quality.changed_rows import SCOPE, contextual_columns, gate_scope, rows_to_check
from kizuna.quality.suites import SuiteFile

SAMPLE_ROWS = 5
CHUNK_ROWS = 500_000  # rows per pandas frame handed to GX: bounds memory at any table size
TABLE_LEVEL = frozenset({"expect_table_row_count_to_be_between", "expect_column_sum_to_be_between"})
# Checked over the whole table in DuckDB (a chunk alone cannot see duplicates in other chunks).
UNIQUENESS = frozenset({"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"})


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
    advice: str | None = None  # what a person does about a failure, when it is not "fix the file"


def plain(value: Any) -> str:
    """A value as a person would type it: 5 not 5.0, no numpy wrappers, 'empty' for missing."""
    if value is None or (not isinstance(value, str | list | dict) and pd.isna(value)):
        return "empty"
    if isinstance(value, pd.Timestamp):
        # a date column reaches GX as a timestamp: show midnight as the date the file holds
        return value.date().isoformat() if value == value.normalize() else value.isoformat(sep=" ")
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


def gx_context() -> Any:
    """An ephemeral Great Expectations context (nothing written to disk), progress bars off.

    One per validator: a context shared by a gate's suites keeps each one's last frame (up to CHUNK_ROWS rows)
    until the gate ends, +200 MB at the peak of a full check of 100k customers, to save ≈ 20 ms a suite."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


class Validator:
    """A suite's expectations bound to its own ephemeral Great Expectations context, reusable across frames."""

    def __init__(self, suite: SuiteFile, expectations: list[dict[str, Any]], types: list[str] | None = None) -> None:
        import great_expectations as gx
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        self.suite = suite
        self.types = types or [e["type"] for e in expectations]  # what each expectation is called in reports
        ctx = gx_context()
        name = suite.name
        gx_suite = ctx.suites.add(
            gx.ExpectationSuite(
                name=name,
                expectations=[
                    ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e.get("meta")).to_domain_obj()
                    for e in expectations
                ],
            )
        )
        asset = ctx.data_sources.add_pandas(name).add_dataframe_asset(suite.table)
        self._definition = gx.ValidationDefinition(
            name=name, data=asset.add_batch_definition_whole_dataframe("whole"), suite=gx_suite
        )

    def run(self, frame: pd.DataFrame, parameters: dict[str, Any], file: str) -> list[CheckResult]:
        outcome = self._definition.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=parameters,
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [SOURCE_ROW_COLUMN]},
        )
        checks = []
        for r, reported_type in zip(outcome.results, self.types, strict=True):
            config = r.expectation_config
            assert config is not None  # GX fills it for every result of a suite run
            problem = _raised(r.exception_info)
            if problem:
                # An expectation that could not run has checked nothing: that must stop the gate, not pass it.
                raise RuntimeError(f"{self.suite.path}: expectation {reported_type} could not run: {problem}")
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
                    suite=self.suite.name,
                    table=self.suite.table,
                    expectation=reported_type,
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


def _merge(parts: list[list[CheckResult]]) -> list[CheckResult]:
    """One result per expectation from its results on consecutive chunks of the same table."""
    merged = []
    for chunk_results in zip(*parts, strict=True):
        first = chunk_results[0]
        rows = [row for r in chunk_results for row in r.rows]
        findings = [f for r in chunk_results for f in r.findings][:SAMPLE_ROWS]
        merged.append(
            CheckResult(
                suite=first.suite,
                table=first.table,
                expectation=first.expectation,
                column=first.column,
                rule=first.rule,
                severity=first.severity,
                success=all(r.success for r in chunk_results),
                unexpected_count=sum(r.unexpected_count for r in chunk_results),
                findings=findings,
                rows=rows,
                advice=first.advice,
            )
        )
    return merged


def rules_on_context(suite: SuiteFile, parameters: dict[str, Any]) -> set[str]:
    """The rule texts (as quarantine.rows records them) of the suite's checks that read other rows: a row they
    moved out may pass another day with its own values unchanged (kizuna.quality.changed_rows)."""
    expectations, derived = _with_duplicate_flags(suite)
    contextual = contextual_columns(derived)
    return {
        (e.get("meta") or {}).get("rule") or describe_rule(e["type"], e["kwargs"], parameters)
        for e in expectations
        if {e["kwargs"].get(k) for k in ("column", "column_A", "column_B")} & contextual
    }


def _with_duplicate_flags(suite: SuiteFile) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The suite's expectations with each uniqueness one rewritten to a check of a duplicate flag, and the
    derived columns (the suite's own and those flags) computed over the whole table in DuckDB."""
    expectations: list[dict[str, Any]] = []
    derived = dict(suite.derived_columns)
    for e in suite.expectations:
        if e["type"] in UNIQUENESS:
            columns = [e["kwargs"]["column"]] if "column" in e["kwargs"] else list(e["kwargs"]["column_list"])
            flag = "_is_duplicate_" + "_".join(columns)
            quoted = ", ".join(f'"{c}"' for c in columns)
            present = " AND ".join(f'"{c}" IS NOT NULL' for c in columns)
            # A semi-join on the duplicated keys (a hash aggregate), not a window over the whole table: it also
            # reads right on the few rows an incremental gate checks (kizuna.quality.changed_rows).
            derived[flag] = (
                f'{present} AND ({quoted}) IN (SELECT {quoted} FROM {{schema}}."{suite.table}" '
                f"WHERE {present} GROUP BY {quoted} HAVING count(*) > 1)"
            )
            rule = "duplicate value" if len(columns) == 1 else "duplicate key"
            meta = {"rule": rule, "column": ", ".join(columns), **(e.get("meta") or {})}
            e = {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": flag, "value_set": [False]},
                "meta": meta,
            }
        expectations.append(e)
    return expectations, derived


def _needed_columns(expectations: list[dict[str, Any]]) -> set[str]:
    """The columns the expectations read (and the source file and row every finding names)."""
    needed = {SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN}
    for e in expectations:
        for key in ("column", "column_A", "column_B"):
            if key in e["kwargs"]:
                needed.add(e["kwargs"][key])
        if (e.get("meta") or {}).get("column"):
            needed.update(c.strip() for c in e["meta"]["column"].split(","))
    return needed


def _create_gate_frame(
    con: Connection,
    schema: str,
    table: str,
    needed: set[str],
    derived: dict[str, str],
    name: str = "_gate_frame",
    rows: str | None = None,
    source: str | None = None,
) -> None:
    """The temp table `name`: only the needed columns of the staged table (or `source`, a part of it whose
    derived columns are computed over it), money as DOUBLE PRECISION; only the source rows the query `rows` selects, if
    given (derived columns still computed over the whole table: some are windows)."""
    cols = []
    for c in TABLES_BY_NAME[table].columns:
        if c.name in needed:
            cols.append(f'"{c.name}"::DOUBLE PRECISION AS "{c.name}"' if c.type is ColumnType.MONEY else f'"{c.name}"')
    cols += [f'({sql.format(schema=schema)}) AS "{name}"' for name, sql in derived.items() if name in needed]
    cols += [SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN]
    where = f" WHERE {SOURCE_ROW_COLUMN} IN ({rows})" if rows is not None else ""
    origin = source or f'{schema}."{table}"'
    con.execute(f"DROP TABLE IF EXISTS {name}")
    con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM (SELECT {', '.join(cols)} FROM {origin}) AS frame{where}")


# The first source row of every `chunk_rows` rows of a table: chunk boundaries that hold rows. (The row's rank
# less its remainder: `//` is DuckDB's, and `/` divides integers exactly on PostgreSQL only.)
_CHUNK_STARTS = (
    f"SELECT min({SOURCE_ROW_COLUMN}) AS start FROM (SELECT {SOURCE_ROW_COLUMN}, "
    f"row_number() OVER (ORDER BY {SOURCE_ROW_COLUMN}) - 1 AS n FROM {{rows}}) AS ranked "
    "GROUP BY n - n % ? ORDER BY start"
)


def _read_frame(con: Connection, sql: str, params: list[Any], dates: list[str]) -> pd.DataFrame:
    df = con.execute(sql, params).df()
    for name in dates:
        if name in df.columns:
            # GX compares datetime64[ns] with ISO-string bounds vectorised and NULL-safe; DuckDB hands out
            # datetime64[us], which falls to a per-value path that errors on NULLs.
            df[name] = df[name].astype("datetime64[ns]")
    return df


def validate_table(
    con: Connection,
    schema: str,
    suite: SuiteFile,
    parameters: dict[str, Any],
    chunk_rows: int = CHUNK_ROWS,
    *,
    incremental: bool = False,
    checked: dict[str, int] | None = None,
) -> list[CheckResult]:
    """Validate a staged table in chunks of `chunk_rows`, so memory stays flat whatever the table's size.

    DuckDB first computes, in one pass, only the columns the suite reads, its derived columns, and for each
    uniqueness expectation a duplicate flag over the whole table (a chunk alone cannot see duplicates in
    other chunks). Row-level expectations then run chunk by chunk; table-level ones (row count, column sum)
    run once on the few columns they need. `incremental`: row-level expectations check only the rows
    `kizuna.quality.changed_rows.rows_to_check` selects, and only those are read; `checked` receives how
    many, per suite.
    """
    contract = TABLES_BY_NAME[suite.table]
    types = [e["type"] for e in suite.expectations]
    expectations, derived = _with_duplicate_flags(suite)
    needed = _needed_columns(expectations)
    # Incremental: only the selected rows are read, never the whole table (at 1M customers, 15M invoices), and
    # the rows that may fail a contextual column are looked for among the few gate_scope keeps, when it can.
    scoped = gate_scope(con, suite, expectations, derived, schema) if incremental else None
    source, derived_here = (None, derived) if scoped is None else (SCOPE, scoped)
    selection = rows_to_check(con, suite, expectations, derived_here, schema, source) if incremental else None
    rows_table = "_gate_frame" if selection is None else "_gate_rows"
    if selection is None:  # every row: over the whole table
        source, derived_here = None, derived
    _create_gate_frame(con, schema, suite.table, needed, derived_here, rows_table, selection, source)
    try:
        row = con.execute(
            f"SELECT count(*), min({SOURCE_ROW_COLUMN}), max({SOURCE_ROW_COLUMN}), "
            f"min({SOURCE_FILE_COLUMN}) FROM {rows_table}"
        ).fetchone()
        total, low, high, file = row or (0, None, None, None)
        if checked is not None:
            checked[suite.name] = int(total)
        if not file and rows_table != "_gate_frame":  # the file a finding names, even when no row is checked
            any_file = con.execute(f'SELECT min({SOURCE_FILE_COLUMN}) FROM {schema}."{suite.table}"').fetchone()
            file = any_file[0] if any_file else None
        file = file or f"{suite.table}.csv"
        dates = [
            c.name for c in contract.columns if c.name in needed and c.type in (ColumnType.DATE, ColumnType.TIMESTAMP)
        ]
        row_level = [i for i, e in enumerate(expectations) if e["type"] not in TABLE_LEVEL]
        table_level = [i for i, e in enumerate(expectations) if e["type"] in TABLE_LEVEL]
        results: dict[int, CheckResult] = {}
        if row_level:
            validator = Validator(suite, [expectations[i] for i in row_level], [types[i] for i in row_level])
            parts = []
            starts = list(range(int(low), int(high) + 1, chunk_rows)) if total else [0]
            if total and rows_table != "_gate_frame":  # a few rows spread over the file: chunks by count, not range
                starts = [r[0] for r in con.execute(_CHUNK_STARTS.format(rows=rows_table), [chunk_rows]).fetchall()]
            for start, end in zip(starts, [*starts[1:], int(high or 0) + 1], strict=True):
                chunk = _read_frame(
                    con,
                    f"SELECT * FROM {rows_table} WHERE {SOURCE_ROW_COLUMN} >= ? AND {SOURCE_ROW_COLUMN} < ?",
                    [start, end],
                    dates,
                )
                parts.append(validator.run(chunk, parameters, file))
            results.update(zip(row_level, _merge(parts), strict=True))
        if table_level:
            validator = Validator(suite, [expectations[i] for i in table_level], [types[i] for i in table_level])
            columns = sorted(
                {expectations[i]["kwargs"]["column"] for i in table_level if "column" in expectations[i]["kwargs"]}
            )
            if rows_table != "_gate_frame":  # a table-level expectation reads every row
                _create_gate_frame(con, schema, suite.table, needed, derived)
            whole = _read_frame(con, f"SELECT {', '.join([SOURCE_ROW_COLUMN, *columns])} FROM _gate_frame", [], dates)
            results.update(zip(table_level, validator.run(whole, parameters, file), strict=True))
    finally:
        con.execute("DROP TABLE IF EXISTS _gate_frame")
        con.execute("DROP TABLE IF EXISTS _gate_rows")
        con.execute(f"DROP TABLE IF EXISTS {SCOPE}")
    return [results[i] for i in range(len(expectations))]
