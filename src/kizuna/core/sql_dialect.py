"""The few expressions kizuna writes differently for each warehouse engine, chosen by the connection.

Most of kizuna's SQL is one text for DuckDB and PostgreSQL (docs/scaling.md lists the rules). Where an engine's
own form is much faster at 1M customers (DuckDB's list lambdas and `arg_min`) or the engines name a function
differently (JSON objects), the SQL asks the connection's dialect, as dbt's adapter macros do for the marts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kizuna.core.connection import Connection
from kizuna.core.postgres_warehouse import PostgresConnection


def sql_literal(text: str) -> str:
    """A text as an SQL string literal, the same on both engines (a quote doubled)."""
    return "'" + text.replace("'", "''") + "'"


def first_by_array(value: str, order: str, *, descending: bool = False) -> str:
    """An aggregate that runs on both engines: `value` of the row with the least (greatest) `order`, over the rows
    where neither is NULL, as DuckDB's arg_min (arg_max) does: a NULL value is passed over for the next row's."""
    direction = " DESC" if descending else ""
    kept = f"{order} IS NOT NULL AND {value} IS NOT NULL"
    return f"(array_agg({value} ORDER BY {order}{direction}) FILTER (WHERE {kept}))[1]"


def _pairs(pairs: Sequence[tuple[str, str]]) -> str:
    """(key, expression) pairs as the arguments of json_object / json_build_object: 'key', expression, ..."""
    return ", ".join(f"'{key}', {expr}" for key, expr in pairs)


@dataclass(frozen=True)
class Dialect:
    name: str

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgresql"

    def json_object(self, pairs: Sequence[tuple[str, str]]) -> str:
        """A JSON object's text from (key, SQL expression) pairs; keys are kizuna's own names, never input."""
        if self.is_postgres:
            return f"json_build_object({_pairs(pairs)})::text"
        return "to_json({" + ", ".join(f"'{key}': {expr}" for key, expr in pairs) + "})::VARCHAR"

    def text_items(self, expr: str) -> str:
        """A comma-separated text (e.g. 'crm, analytics') as a list of its trimmed items ('' for NULL)."""
        if self.is_postgres:
            return f"ARRAY(SELECT trim(item)::VARCHAR FROM unnest(string_to_array(coalesce({expr}, ''), ',')) AS item)"
        return f"list_transform(string_split(coalesce({expr}, ''), ','), lambda x: trim(x))"

    def first_by(self, value: str, order: str) -> str:
        """An aggregate: `value` of the row with the least `order` (first_by_array; DuckDB's arg_min is faster)."""
        return first_by_array(value, order) if self.is_postgres else f"arg_min({value}, {order})"

    def last_by(self, value: str, order: str) -> str:
        """An aggregate: `value` of the row with the greatest `order` (first_by_array, descending)."""
        return first_by_array(value, order, descending=True) if self.is_postgres else f"arg_max({value}, {order})"

    def row_json(self, alias: str) -> str:
        """A table alias's whole row as JSON text."""
        return f"row_to_json({alias})::text" if self.is_postgres else f"to_json({alias})::VARCHAR"

    def json_patch(self, json_text: str, pairs: Sequence[tuple[str, str]]) -> str:
        """JSON text merge-patched with the pairs (RFC 7386, as DuckDB's json_merge_patch): each key set to its
        value, or removed where the value is NULL."""
        if self.is_postgres:
            keys = ", ".join(f"'{key}'" for key, _ in pairs)
            added = f"jsonb_strip_nulls(jsonb_build_object({_pairs(pairs)}))"
            return f"((({json_text})::jsonb - ARRAY[{keys}]) || {added})::text"
        return f"json_merge_patch({json_text}, json_object({_pairs(pairs)}))::VARCHAR"

    def bucket_of(self, text: str) -> str:
        """A number from 0 to 2³² − 1 drawn from a text's MD5 (the same on both engines, so the same groups)."""
        if self.is_postgres:
            return f"('x' || substr(md5({text}), 1, 8))::bit(32)::bigint"
        return f"('0x' || substr(md5({text}), 1, 8))::UBIGINT"

    def sha256_hex(self, text: str) -> str:
        """The SHA-256 of a text's UTF-8 bytes, as 64 hexadecimal digits."""
        return f"encode(sha256(convert_to({text}, 'UTF8')), 'hex')" if self.is_postgres else f"sha256({text})"

    def matches(self, text: str, pattern: str) -> str:
        """Whether a regular expression (anchored by the caller where it must be) finds a match in the text."""
        return f"({text} ~ {pattern})" if self.is_postgres else f"regexp_matches({text}, {pattern})"

    def full_match(self, text: str, pattern: str) -> str:
        """Whether a regular expression matches the whole text (DuckDB's regexp_full_match)."""
        if self.is_postgres:
            return f"({text} ~ ('^(?:' || {pattern} || ')$'))"
        return f"regexp_full_match({text}, {pattern})"

    def regexp_group(self, text: str, pattern: str, group: int) -> str:
        """The text a capturing group of a matching regular expression took (NULL on PostgreSQL, '' on DuckDB,
        where it does not match: callers pick matching rows first)."""
        if self.is_postgres:
            return f"(regexp_match({text}, {pattern}))[{group}]"
        return f"regexp_extract({text}, {pattern}, {group})"

    def json_text(self, json_text: str, key: str) -> str:
        """A top-level field of a JSON text, as text (NULL when missing); keys are kizuna's own column names."""
        if self.is_postgres:
            return f"(({json_text})::json ->> '{key}')"
        return f"json_extract_string({json_text}, '$.\"{key}\"')"

    def quantile(self, value: str, fraction: float) -> str:
        """An aggregate: the continuous (interpolated) quantile of `value` at `fraction`, as both engines compute it."""
        if self.is_postgres:
            return f"percentile_cont({fraction}) WITHIN GROUP (ORDER BY {value})"
        return f"quantile_cont({value}, {fraction})"

    def hash_of(self, parts: Sequence[str]) -> str:
        """One value per combination of the parts' values (NULLs included), for membership within one engine only:
        DuckDB's 64-bit hash (a rare collision is the caller's to tolerate), PostgreSQL's MD5 of them as JSON."""
        if self.is_postgres:
            return f"md5(json_build_array({', '.join(parts)})::text)"
        return f"hash({', '.join(parts)})"

    def temp_tables(self) -> str:
        """A query of the names (`table_name`) of this session's temporary tables."""
        if self.is_postgres:
            return (
                "SELECT relname::text AS table_name FROM pg_class "
                "WHERE relnamespace = pg_my_temp_schema() AND relkind = 'r'"
            )
        return "SELECT table_name FROM duckdb_tables() WHERE temporary"

    def json_keys(self, json_text: str) -> str:
        """A set-returning expression: the top-level keys of a JSON object's text, one row each."""
        if self.is_postgres:
            return f"json_object_keys(({json_text})::json)"
        return f"unnest(json_keys(({json_text})::JSON))"

    def byte_order(self, text: str) -> str:
        """A text to order by as DuckDB orders text, byte by byte, whatever the server's collation."""
        return f'{text} COLLATE "C"' if self.is_postgres else text


DUCKDB = Dialect("duckdb")
POSTGRES = Dialect("postgresql")


def dialect_of(con: Connection | None) -> Dialect:
    """The dialect of the engine behind a connection (DuckDB's when there is none: SQL built ahead of a run)."""
    return POSTGRES if isinstance(con, PostgresConnection) else DUCKDB
