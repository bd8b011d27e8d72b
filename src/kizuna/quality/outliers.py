"""Outliers: each suite's `meta.outliers` measures of the load against the last good one (docs/quality.md)."""

from __future__ import annotations

from kizuna.core.connection import Connection
from kizuna.core.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN, TABLES_BY_NAME
from kizuna.core.errors import Finding
from kizuna.core.sql_dialect import Dialect, dialect_of
from kizuna.core.warehouse import INCOMING_SCHEMA, LOAD_CHANGES_STAGING, RAW_SCHEMA, table_exists
from kizuna.quality.changed_rows import changed
from kizuna.quality.plausibility import count_and_sample, count_rows, figure, suite_source
from kizuna.quality.quarantine import QUARANTINE_STAGING
from kizuna.quality.suites import OutlierSpec, SuiteFile
from kizuna.quality.validate import UNIQUENESS, CheckResult

OUTLIER_ADVICE = (
    "if the values are real, publish them with `kizuna check --accept-outliers`; otherwise fix the source and run "
    "`kizuna ingest` again"
)
PERCENTILE = 0.99


def outlier_checks(con: Connection, suite: SuiteFile, factor: float, *, incremental: bool = False) -> list[CheckResult]:
    """Each of the suite's `meta.outliers` measures against the last good load (docs/quality.md, "Outliers").

    `incremental` (kizuna.quality.changed_rows): only entities with a row the load inserts, updates, deletes or
    quarantines are measured. Any other keeps its value of the last good load, which is its own baseline: with
    a factor of at least 1 it cannot exceed it. The 99th percentile is still taken over the whole last load."""
    if (
        not suite.outliers
        or not table_exists(con, INCOMING_SCHEMA, suite.table)
        or not count_rows(con, RAW_SCHEMA, suite.table)
    ):
        return []
    return [
        _outlier_check(con, suite, spec, factor, _touched_entities(con, suite, spec) if incremental else None)
        for spec in suite.outliers
    ]


def _entity(dialect: Dialect, columns: list[str]) -> str:
    """An entity's key as one hash of its parts as text (the change list's keys and a quarantined record's fields
    are text). Two entities sharing a hash only add an unchanged entity to the measured ones, which cannot
    exceed its own baseline (outlier_checks): the verdict is the same, and hashing 15M rows is cheaper than
    building a list per row (invoices and usage at 1M customers: ≈ 2 of 8 CPU s of the outlier checks)."""
    return dialect.hash_of([f'CAST("{k}" AS VARCHAR)' for k in columns])


def _touched_entities(con: Connection, suite: SuiteFile, spec: OutlierSpec) -> str:
    """A query of the entities (their key hashed as text, _entity) whose rows this load changes against raw.

    An entity that is the table's key (an invoice, a deal) is read off the change list itself: it names every key
    whose rows differ, and one of its keys with no row on either side matches no row of the check. Other entities
    (a customer's subscriptions, a keyless table's) are the changed rows' own, found in both tables (at 1M
    customers, a pass over 15M invoices staged and 15M published, ≈ 1.1 s of CPU, that the change list spares)."""
    table = TABLES_BY_NAME[suite.table]
    dialect = dialect_of(con)
    if table.key is not None and list(spec.key) == [table.key]:
        parts = [
            f"SELECT {dialect.hash_of(['key'])} FROM {LOAD_CHANGES_STAGING} "
            f"WHERE table_name = '{table.name}' AND key IS NOT NULL"
        ]
    else:
        parts = [
            f'SELECT {_entity(dialect, spec.key)} FROM {schema}."{table.name}" WHERE {changed(con, schema, table.name)}'
            for schema in (INCOMING_SCHEMA, RAW_SCHEMA)
        ]
    if table_exists(con, INCOMING_SCHEMA, QUARANTINE_STAGING.partition(".")[2]):  # rows the gate moved out
        fields = dialect.hash_of([dialect.json_text("record", k) for k in spec.key])
        parts.append(f"SELECT {fields} FROM {QUARANTINE_STAGING} WHERE table_name = '{table.name}'")
    return " UNION ".join(parts)


def _segment_expr(table: str, column: str | None) -> str:
    """The segment as staging will read it: raw keeps blanks, so a blank takes the contract's default (JPY)."""
    if not column:
        return "''"
    contract = TABLES_BY_NAME.get(table)
    default = contract.column(column).default if contract and column in contract.column_names else None
    blank = "''" if default is None else "'" + default.replace("'", "''") + "'"
    return f"coalesce(nullif(trim(CAST(\"{column}\" AS VARCHAR)), ''), {blank})"


def _single_sum(value: str) -> str | None:
    """`x` when the aggregate is `sum(x)` and nothing else (`sum(a) + sum(b)` is not)."""
    text = value.strip()
    if not (text.lower().startswith("sum(") and text.endswith(")")):
        return None
    inner, depth = text[4:-1], 0
    for char in inner:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return None
    return inner if depth == 0 else None


def _grouped_by(keys: str, segment: str, spec: OutlierSpec) -> str:
    """GROUP BY an entity's key columns and its segment (when the segment is a constant, not it: PostgreSQL
    refuses a text constant there)."""
    return f"GROUP BY {keys}, {segment}" if spec.segment else f"GROUP BY {keys}"


def _everyone(suite: SuiteFile, spec: OutlierSpec, keys: str, segment: str) -> str:
    """Every entity's value in the last good load (segment, value), for the percentile.

    An entity whose key a critical uniqueness rule of the suite covers is one row of raw (the rule held when it
    was published): a `sum(x)` is then its row's x, read without grouping 15M rows by key (10x faster at 1M).
    Rows with an empty key are grouped as before (uniqueness rules let empty keys repeat)."""
    source = suite_source(suite, RAW_SCHEMA, spec.value, keys, segment)
    grouped = f"SELECT {keys}, {segment} AS _segment, ({spec.value})::DOUBLE PRECISION AS _value FROM {source}"
    group_by = _grouped_by(keys, segment, spec)
    per_row = _single_sum(spec.value)
    unique = any(
        e["type"] in UNIQUENESS
        and (e.get("meta") or {}).get("severity") == "critical"
        and set([e["kwargs"]["column"]] if "column" in e["kwargs"] else e["kwargs"]["column_list"]) == set(spec.key)
        for e in suite.expectations
    )
    if per_row is None or not unique:
        return f"{grouped} {group_by}"
    present = " AND ".join(f'"{k}" IS NOT NULL' for k in spec.key)
    return (
        f"SELECT {segment} AS _segment, ({per_row})::DOUBLE PRECISION AS _value FROM {source} WHERE {present} "
        f"UNION ALL SELECT _segment, _value FROM ({grouped} WHERE NOT ({present}) {group_by}) AS keyless"
    )


def _outlier_check(
    con: Connection, suite: SuiteFile, spec: OutlierSpec, factor: float, touched: str | None = None
) -> CheckResult:
    """Flag every entity (a row's key, a customer, ...) whose value exceeds `factor` times its baseline.

    The baseline is the larger of the entity's own value in the last good load and the 99th percentile of
    all entities' values there (per segment, e.g. per currency): a customer may grow within what is normal,
    and a large customer may stay large, but nothing jumps a hundredfold past both. The percentile, unlike
    the maximum, is not moved by one earlier outlier that a person accepted.
    """
    keys = ", ".join(f'"{k}"' for k in spec.key)
    segment = _segment_expr(suite.table, spec.segment)
    key_text = ", ".join(f"'{k} ' || CAST(\"{k}\" AS VARCHAR)" for k in spec.key)
    joined = " AND ".join(f'cur."{k}" IS NOT DISTINCT FROM prev."{k}"' for k in spec.key)
    dialect = dialect_of(con)
    only = "" if touched is None or factor < 1 else f" WHERE {_entity(dialect, spec.key)} IN ({touched})"
    reads = (spec.value, keys, segment, key_text)
    group_by = _grouped_by(keys, segment, spec)
    sql = f"""
        WITH cur AS (
            SELECT {keys}, {segment} AS _segment, ({spec.value})::DOUBLE PRECISION AS _value,
                   {dialect.first_by(SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN)} AS _file,
                   min({SOURCE_ROW_COLUMN}) AS _row, concat_ws(', ', {key_text}) AS _key
            FROM {suite_source(suite, INCOMING_SCHEMA, *reads)}{only} {group_by}
        ),
        everyone AS ({_everyone(suite, spec, keys, segment)}),
        prev AS (
            SELECT {keys}, {segment} AS _segment, ({spec.value})::DOUBLE PRECISION AS _value
            FROM {suite_source(suite, RAW_SCHEMA, *reads)}{only} {group_by}
        ),
        usual AS (
            SELECT _segment, {dialect.quantile("_value", PERCENTILE)} AS _p99 FROM everyone WHERE _value > 0
            GROUP BY _segment
        ),
        compared AS (
            SELECT cur._file, cur._row, cur._key, cur._segment, cur._value, prev._value AS _own, usual._p99,
                   greatest(coalesce(prev._value, 0), coalesce(usual._p99, 0)) AS _baseline
            FROM cur
            LEFT JOIN prev ON {joined} AND cur._segment = prev._segment
            LEFT JOIN usual ON cur._segment = usual._segment
        )
        SELECT _file, _row, _key, _segment, _value, _own, _p99 FROM compared
        WHERE _baseline > 0 AND _value > ? * _baseline"""
    total, sample = count_and_sample(con, sql, [factor], "_value DESC, _file, _row")
    findings = []
    for file, row, key, seg, value, own, p99 in sample:
        unit = f" {seg}" if seg else ""
        own_text = f"{figure(own)}{unit}" if own is not None else "none (new)"
        findings.append(
            Finding(
                str(file),
                int(row),
                spec.column,
                f"{spec.name} of {figure(value)}{unit} ({key}) is more than {figure(factor)}x both its value in the last "
                f"good load ({own_text}) and the 99th percentile there ({figure(p99)}{unit})",
            )
        )
    return CheckResult(
        suite=suite.name,
        table=suite.table,
        expectation="no_outliers",
        column=spec.column,
        rule=f"{spec.name} is implausible against the last good load",
        severity="critical",
        success=total == 0,
        unexpected_count=total,
        findings=findings,
        advice=OUTLIER_ADVICE if total else None,
    )
