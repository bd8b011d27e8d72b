"""dbt failures in plain words: the table, column, rule and example rows of a failed test, not its test id."""

from __future__ import annotations

import json
import logging
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kizuna.core.connection import Connection, WarehouseError, WarehouseLockedError, connect, is_server_url

log = logging.getLogger(__name__)

# The warehouse cannot be read now: another process holds the file, or the engine refused.
_UNREADABLE: tuple[type[Exception], ...] = (WarehouseLockedError, *WarehouseError)

EXAMPLES = 3  # example rows per failed test, as the quality gate's report shows a few per check
_MAX_COLUMNS = 4  # columns of an example row: the first ones, the keys by our models' convention
_REF = re.compile(r"ref\(\s*['\"]([^'\"]+)['\"]\s*\)")


@dataclass
class Failure:
    """One failed dbt node, described: `text` is the line people read, `examples` a few offending rows."""

    text: str
    examples: list[str]
    node_id: str

    def lines(self) -> list[str]:
        return [self.text, *(f"    e.g. {e}" for e in self.examples)]


def table_name(model: str) -> str:
    """What people call a model's table: the entity of stg_<source>__<entity>, otherwise the model's own name."""
    return model.split("__", 1)[1] if model.startswith("stg_") and "__" in model else model


def column_words(column: str) -> str:
    """is_paused → 'paused flag', has_invoice → 'invoice flag'; other columns keep their names."""
    for prefix in ("is_", "has_"):
        if column.startswith(prefix):
            return column.removeprefix(prefix).replace("_", " ") + " flag"
    return column


def _rows(n: int, singular: str, plural: str) -> str:
    return f"{n:,} {singular if n == 1 else plural}"


def rule_text(kind: str, column: str | None, kwargs: dict[str, Any], failures: int) -> str:
    """The finding as the quality docs word them ('2 rows have no paused flag'); failures as dbt counts them."""
    col = column or "?"
    if kind == "not_null":
        return f"{_rows(failures, 'row has', 'rows have')} no {column_words(col)}"
    if kind == "unique":
        return f"{_rows(failures, 'value', 'values')} of {col} appear on more than one row (duplicate value)"
    if kind == "accepted_values":
        accepted = ", ".join(str(v) for v in kwargs.get("values", []))
        return f"{_rows(failures, 'unexpected value', 'unexpected values')} of {col} (accepted: {accepted})"
    if kind == "relationships":
        found = _REF.search(str(kwargs.get("to", "")))
        parent = table_name(found.group(1)) if found else str(kwargs.get("to"))
        field = kwargs.get("field", col)
        where = parent if field == col else f"{parent}.{field}"
        return f"{_rows(failures, 'row has a', 'rows have a')} {col} that is not in {where}"
    if kind == "expression_is_true":
        return f"{_rows(failures, 'row breaks', 'rows break')} the rule {kwargs.get('expression')}"
    if kind == "unique_combination_of_columns":
        columns = ", ".join(kwargs.get("combination_of_columns", []))
        return f"{_rows(failures, 'combination', 'combinations')} of ({columns}) appear on more than one row"
    on = f" on {col}" if column else ""
    return f"{_rows(failures, 'row fails', 'rows fail')} the rule {kind}{on}"


def _value(value: object) -> str:
    return "NULL" if value is None else str(value)


def _example(names: list[str], row: tuple[Any, ...], column: str | None) -> str:
    """One offending row as 'customer_id C001, month 2026-10-01'; dbt's helper columns in plain names."""
    pairs = dict(zip(names, row, strict=True))
    count = pairs.pop("n_records", None)
    for helper in ("unique_field", "value_field", "from_field"):
        if helper in pairs and column:
            pairs[column] = pairs.pop(helper)
    text = ", ".join(f"{name} {_value(value)}" for name, value in list(pairs.items())[:_MAX_COLUMNS])
    return text + (f" ({count:,} rows)" if isinstance(count, int) else "")


def _example_sql(node: dict[str, Any], kind: str, column: str | None, relation: str | None, compiled: str) -> str:
    """The test's own query, except not_null, whose query returns only the empty column: the rows themselves."""
    if kind == "not_null" and relation and column:
        where = node.get("config", {}).get("where")
        extra = f" AND ({where})" if where else ""
        return f'SELECT * FROM {relation} WHERE "{column}" IS NULL{extra}'
    return compiled


def _examples(con: Connection | None, sql: str, column: str | None) -> list[str]:
    if con is None or not sql.strip():
        return []
    try:
        cur = con.execute(f"SELECT * FROM ({sql.strip().rstrip(';')}) AS failing LIMIT {EXAMPLES}")
        names = [d[0] for d in cur.description]
        return list(dict.fromkeys(_example(names, row, column) for row in cur.fetchall()))  # each once
    except WarehouseError as exc:  # examples are a help; the failure itself is already known
        log.info("no example rows for a failed dbt test: %s", exc)
        return []


def describe(target_dir: Path, warehouse: Path | str, results: list[dict[str, Any]]) -> list[Failure]:
    """The failed nodes of a dbt command (its run_results entries) in plain words, with example rows read from the
    warehouse (read-only, after dbt closed it)."""
    failed = [r for r in results if str(r.get("status")) in ("error", "fail", "runtime error")]
    if not failed:
        return []
    try:
        nodes: dict[str, Any] = json.loads((target_dir / "manifest.json").read_text(encoding="utf-8"))["nodes"]
    except (OSError, ValueError, KeyError):
        nodes = {}
    with ExitStack() as stack:
        con: Connection | None = None
        if is_server_url(warehouse) or Path(warehouse).exists():
            try:
                con = stack.enter_context(connect(warehouse, read_only=True))
            except _UNREADABLE as exc:
                log.info("no example rows: the warehouse could not be opened read-only: %s", exc)
        return [_describe_one(r, nodes, con) for r in failed]


def _describe_one(result: dict[str, Any], nodes: dict[str, Any], con: Connection | None) -> Failure:
    uid = str(result["unique_id"])
    node = nodes.get(uid, {})
    # dbt's first line often only repeats the node id ("Runtime Error in test <id> (<file>)"): the cause follows.
    said = [line.strip() for line in str(result.get("message") or "").splitlines() if line.strip()]
    message = next((line for line in said if not re.match(r"^\w+ Error in ", line)), said[0] if said else "")
    kind_of_node = uid.split(".", 1)[0]
    if kind_of_node in ("model", "seed", "snapshot"):
        name = node.get("name") or uid.rsplit(".", 1)[-1]
        return Failure(f"{table_name(name)}: the {kind_of_node} {name} failed to build: {message}", [], uid)
    if kind_of_node == "unit_test":
        name = node.get("name") or uid.rsplit(".", 1)[-1]
        model = node.get("model") or "?"
        return Failure(f"{table_name(model)}: the unit test {name} failed (a formula gives other results)", [], uid)
    counted = re.search(r"\bGot (\d+)", message)  # "Got 2 results, configured to fail if != 0"
    failures = int(result.get("failures") or (counted.group(1) if counted else 0))
    meta = node.get("test_metadata") or {}
    attached = nodes.get(str(node.get("attached_node")), {})
    relation = attached.get("relation_name")
    table = table_name(attached.get("name", "")) if attached else ""
    compiled = str(result.get("compiled_code") or node.get("compiled_code") or "")
    if result.get("status") == "error":  # the test's query itself failed (a missing table, a type error)
        column = node.get("column_name")
        rule = f"{meta.get('name')} on {column}" if meta and column else meta.get("name") or node.get("name", uid)
        return Failure(f"{table or '?'}: the check {rule} could not run: {message}", [], uid)
    if not meta:  # a singular test: dbt_project/tests/<name>.sql, whose name says what it asserts
        name = str(node.get("name") or uid.rsplit(".", 1)[-1])
        words = name.removeprefix("assert_").replace("_", " ")
        path = node.get("original_file_path", f"tests/{name}.sql")
        text = f"check '{words}' (dbt_project/{path}): {_rows(failures, 'row breaks', 'rows break')} it"
        return Failure(text, _examples(con, compiled, None), uid)
    kind = str(meta.get("name"))
    kwargs = meta.get("kwargs") or {}
    column = node.get("column_name") or kwargs.get("column_name")
    text = f"{table or '?'}: {rule_text(kind, column, kwargs, failures)}"
    return Failure(text, _examples(con, _example_sql(node, kind, column, relation, compiled), column), uid)
