"""The contract's types in DuckDB SQL: width folding, mapped values, casts, and guards against what it refuses."""

from __future__ import annotations

from kizuna.core.contract import ColumnType, Table
from kizuna.sources.mapping import ANY_OTHER_VALUE

# Booleans as spreadsheets and Japanese forms write them (compared after width folding and lower-casing).
_TRUE = ("true", "t", "1", "yes", "y", "はい", "○", "◯", "〇", "有")
_FALSE = ("false", "f", "0", "no", "n", "いいえ", "×", "✕", "無")
# NFKC's width folding, done in SQL so no row passes through Python: full-width ASCII (！ to ～) and the
# ideographic space become their ASCII forms, so １００００, ２０２４-０２-０１ and Ｃ００１ parse and match.
_FULL_WIDTH = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000"
_HALF_WIDTH = "".join(chr(c) for c in range(0x21, 0x7F)) + " "
_FULL_WIDTH_CLASS = "[\uff01-\uff5e\u3000]"  # the characters _FULL_WIDTH folds, as an RE2 class


TYPE_HINT = {
    ColumnType.INTEGER: "a whole number",
    ColumnType.MONEY: "an amount (digits, optional decimals)",
    ColumnType.NUMBER: "a number",
    ColumnType.DATE: "a date (YYYY-MM-DD or YYYY/MM/DD)",
    ColumnType.TIMESTAMP: "a date-time (YYYY-MM-DD HH:MM[:SS], optional UTC offset)",
    ColumnType.BOOLEAN: "true or false",
}


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def folded(expr: str) -> str:
    """The text with full-width ASCII folded and surrounding spaces trimmed; empty text is NULL."""
    # DuckDB's translate() builds its character map again for every value (≈ 20 µs each, most of ingest's
    # time); few values hold a full-width character, and only those pay for it (same result, 17x less CPU).
    # The regexp test itself costs more than the rest of reading the value; plain ASCII text (its byte length
    # is its character count) holds no full-width character and skips it.
    fold = f"translate({expr}, {sql_text(_FULL_WIDTH)}, {sql_text(_HALF_WIDTH)})"
    wide = f"strlen({expr}) <> length({expr}) AND regexp_matches({expr}, '{_FULL_WIDTH_CLASS}')"
    return f"nullif(trim(CASE WHEN {wide} THEN {fold} ELSE {expr} END), '')"


def value_mapped(expr: str, value_map: dict[str, str | None]) -> str:
    """The export's value through a mapping's value map; unmapped values stay as they are unless '*' is mapped."""
    whens = [
        f"WHEN {expr} = {sql_text(k)} THEN {'NULL' if v is None else sql_text(v)}"
        for k, v in value_map.items()
        if k != ANY_OTHER_VALUE
    ]
    other = value_map.get(ANY_OTHER_VALUE, "") if ANY_OTHER_VALUE in value_map else None
    fallback = expr if ANY_OTHER_VALUE not in value_map else ("NULL" if other is None else sql_text(other))
    return f"CASE {' '.join(whens)} ELSE {fallback} END" if whens else fallback


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cast_expr(col: str, ctype: ColumnType) -> str:
    """DuckDB's cast of the trimmed text column to its contract type (NULL where it does not parse)."""
    v = quote(col)
    if ctype is ColumnType.INTEGER:
        return f"try_cast(replace({v}, ',', '') AS BIGINT)"
    if ctype is ColumnType.MONEY:
        # Most amounts are plain digits: cast first, and only text that does not cast loses its separators,
        # yen signs and spaces (a regexp for every value otherwise; same result, as none of those casts).
        plain = f"try_cast({v} AS DECIMAL(18,2))"
        return f"coalesce({plain}, try_cast(regexp_replace({v}, '[,¥￥円\\s]', '', 'g') AS DECIMAL(18,2)))"
    if ctype is ColumnType.NUMBER:
        return f"try_cast(replace({v}, ',', '') AS DOUBLE)"
    if ctype is ColumnType.DATE:
        # CRM exports write dates with a time of day (HubSpot's "2024-02-01 10:23"): the date is what counts.
        formats = ", ".join(f"'{d}{t}'" for d in ("%Y-%m-%d", "%Y/%m/%d") for t in ("", " %H:%M", " %H:%M:%S"))
        return f"coalesce(try_strptime({v}, [{formats}])::DATE, try_cast({v} AS DATE))"
    if ctype is ColumnType.TIMESTAMP:
        # Naive text is business-local time (the session TimeZone); stored as UTC.
        return f"timezone('UTC', try_cast(replace({v}, '/', '-') AS TIMESTAMPTZ))"
    if ctype is ColumnType.BOOLEAN:
        t = ", ".join(f"'{x}'" for x in _TRUE)
        f = ", ".join(f"'{x}'" for x in _FALSE)
        return f"CASE WHEN lower({v}) IN ({t}) THEN true WHEN lower({v}) IN ({f}) THEN false END"
    return v


def _cast_column(col: str) -> str:
    return quote(f"__cast_{col}")


def typed_expr(col: str, ctype: ColumnType) -> str:
    """The contract's value over `with_casts()`: the cast where the text is what the contract accepts, else NULL.

    DuckDB's casts accept more than the contract: '1.5' as an integer (rounded to 2), '0x10' (16), 'NaN' and
    'inf' as numbers, 'infinity', 'epoch', '2024-01-01 (BC)' and years past 9999 as dates. Those are refused,
    not loaded. The guards read the cast's column, so each cast is computed once.
    """
    v, x = quote(col), _cast_column(col)
    if ctype is ColumnType.INTEGER:
        return f"CASE WHEN regexp_full_match(replace({v}, ',', ''), '[+-]?[0-9]+(\\.0+)?') THEN {x} END"
    if ctype is ColumnType.NUMBER:
        return f"CASE WHEN isfinite({x}) THEN {x} END"
    if ctype in (ColumnType.DATE, ColumnType.TIMESTAMP):
        return f"CASE WHEN regexp_matches({v}, '^[0-9]{{4}}[-/]') AND year({x}) BETWEEN 1 AND 9999 THEN {x} END"
    return v if ctype is ColumnType.TEXT else x


def with_casts(table: Table, text_table: str) -> str:
    """The text table with each typed column's cast beside it (DuckDB computes only those a query uses)."""
    casts = [
        f"{_cast_expr(c.name, c.type)} AS {_cast_column(c.name)}"
        for c in table.columns
        if c.type is not ColumnType.TEXT
    ]
    return f"(SELECT *, {', '.join(casts)} FROM {text_table})" if casts else text_table
