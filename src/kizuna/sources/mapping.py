"""Header mappings: load a CRM's or SFA's own export (its file names, headers and values) as the contract's tables.

A mapping is a YAML file, shipped in mappings/ or written by the user, named by `files: {mapping: ...}` in the
sources file (docs/sources.md, "Your own export"):

    customers:
      file: "hubspot-crm-exports-*companies*.csv"   # a file name or a glob in the source directory
      columns:
        customer_id: Record ID                     # contract column: the export's header
        name: Company name
        billing_period_months: {constant: "12"}    # a fixed value for every row
      values:
        status: {有効: active, 解約: canceled, "*": active}   # the export's value -> the contract's ("*": any other)
      keep:
        Deal Stage: [Closed Won]                   # only rows whose column holds one of these values

Headers match case-insensitively after width folding and trimming, as the contract's own headers do.
"""

from __future__ import annotations

import difflib
import fnmatch
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kizuna.core.contract import TABLES_BY_NAME, Table
from kizuna.core.errors import SourceError
from kizuna.core.yaml_files import read_yaml

ANY_OTHER_VALUE = "*"
_TABLE_KEYS = ("file", "columns", "values", "keep")


def normalise_header(name: str) -> str:
    """A header as matched: NFKC (full-width letters and digits folded), trimmed, lower-cased."""
    return unicodedata.normalize("NFKC", name).strip().lower()


@dataclass(frozen=True)
class TableMapping:
    """How one contract table is read from an export: its file, header per column, value maps and row filter."""

    table: str
    file: str
    headers: dict[str, str] = field(default_factory=dict)  # contract column -> export header
    constants: dict[str, str] = field(default_factory=dict)  # contract column -> fixed value
    values: dict[str, dict[str, str | None]] = field(default_factory=dict)  # contract column -> value map
    keep: dict[str, tuple[str, ...]] = field(default_factory=dict)  # export header -> values kept

    def header_of(self, column: str) -> str:
        """The name a person sees for a contract column: the export's header, with the contract's name."""
        header = self.headers.get(column)
        return f"{header} ({column})" if header and normalise_header(header) != column else column


@dataclass(frozen=True)
class Mapping:
    """A whole mapping: where it came from and one TableMapping per table it maps."""

    origin: str
    tables: dict[str, TableMapping]

    def of(self, table: str) -> TableMapping | None:
        return self.tables.get(table)


def shipped_mappings(mappings_dir: Path) -> list[str]:
    """The names of the mappings shipped in mappings/ (file names without .yaml)."""
    return sorted(p.stem for p in mappings_dir.glob("*.yaml"))


def resolve_mapping_path(name_or_path: str, mappings_dir: Path, relative_to: Path | None = None) -> Path:
    """A shipped mapping's name (`hubspot-export`) or a path to a YAML file, relative to the sources file."""
    if "/" not in name_or_path and not name_or_path.endswith((".yaml", ".yml")):
        path = mappings_dir / f"{name_or_path}.yaml"
        if not path.is_file():
            shipped = shipped_mappings(mappings_dir)
            close = difflib.get_close_matches(name_or_path, shipped, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise SourceError(
                "files.mapping",
                None,
                None,
                f"no shipped mapping named {name_or_path!r}; {hint}shipped: {', '.join(shipped) or 'none'}",
            )
        return path
    path = Path(name_or_path)
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    if not path.is_file():
        raise SourceError(str(path), None, None, "mapping file does not exist (files.mapping in the sources file)")
    return path


def _text(value: object) -> str:
    # YAML reads yes/no, numbers and dates as their own types; a mapping means the text as written.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _table_mapping(where: str, name: str, spec: object) -> TableMapping:
    if name not in TABLES_BY_NAME:
        raise SourceError(where, None, name, f"is not a contract table; expected one of {', '.join(TABLES_BY_NAME)}")
    table: Table = TABLES_BY_NAME[name]
    if not isinstance(spec, dict):
        raise SourceError(where, None, name, "must be a mapping with 'file' and 'columns'")
    unknown = sorted(set(map(str, spec)) - set(_TABLE_KEYS))
    if unknown:
        raise SourceError(where, None, f"{name}.{unknown[0]}", f"unknown key; expected one of {', '.join(_TABLE_KEYS)}")
    file = spec.get("file")
    if not isinstance(file, str) or not file.strip():
        raise SourceError(where, None, f"{name}.file", "must name the export's file (a name or a glob)")
    headers: dict[str, str] = {}
    constants: dict[str, str] = {}
    columns = spec.get("columns") or {}
    if not isinstance(columns, dict):
        raise SourceError(where, None, f"{name}.columns", "must map contract columns to the export's headers")
    for column, source in columns.items():
        column = str(column)
        if column not in table.column_names:
            raise SourceError(
                where, None, f"{name}.columns.{column}", f"is not a column of {name}: {', '.join(table.column_names)}"
            )
        if isinstance(source, dict):
            if set(source) != {"constant"}:
                raise SourceError(where, None, f"{name}.columns.{column}", "expected a header or {constant: value}")
            constants[column] = _text(source["constant"])
        elif isinstance(source, str) and source.strip():
            headers[column] = source
        else:
            raise SourceError(where, None, f"{name}.columns.{column}", "expected the export's header")
    values: dict[str, dict[str, str | None]] = {}
    for column, value_map in (spec.get("values") or {}).items():
        column = str(column)
        if column not in table.column_names:
            raise SourceError(where, None, f"{name}.values.{column}", f"is not a column of {name}")
        if not isinstance(value_map, dict):
            raise SourceError(where, None, f"{name}.values.{column}", "must map the export's values to the contract's")
        values[column] = {_text(k): (None if v is None else _text(v)) for k, v in value_map.items()}
    keep: dict[str, tuple[str, ...]] = {}
    for header, kept in (spec.get("keep") or {}).items():
        kept_list = kept if isinstance(kept, list) else [kept]
        keep[str(header)] = tuple(_text(v) for v in kept_list)
    return TableMapping(name, file.strip(), headers, constants, values, keep)


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file; errors name the file and the key."""
    where = str(path)
    try:  # strict, as every YAML file people edit: a header mapped twice must not silently keep the last
        doc = read_yaml(path, ValueError, shown=where) or {}
    except ValueError as exc:
        raise SourceError(where, None, None, str(exc).removeprefix(f"{where}: ")) from None
    if not isinstance(doc, dict):
        raise SourceError(where, None, None, "must map contract tables (customers, subscriptions, ...) to exports")
    tables = {str(name): _table_mapping(where, str(name), spec) for name, spec in doc.items()}
    return Mapping(origin=where, tables=tables)


def find_mapped_file(source_dir: Path, mapping: TableMapping) -> Path | None:
    """The one file in source_dir matching the mapping's name or glob; None if none, an error if several."""
    pattern = mapping.file
    if not any(ch in pattern for ch in "*?["):
        path = source_dir / pattern
        return path if path.is_file() else None
    matches = sorted(p for p in source_dir.iterdir() if p.is_file() and fnmatch.fnmatch(p.name, pattern))
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches[:5])
        raise SourceError(
            mapping.file, None, None, f"matches {len(matches)} files for {mapping.table} ({names}); keep only one"
        )
    return matches[0] if matches else None


def mapping_from_options(options: dict[str, Any], mappings_dir: Path, sources_file: Path | None) -> Mapping | None:
    """The mapping the sources file's `files:` options name, if any."""
    name = options.get("mapping")
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip():
        raise SourceError("files.mapping", None, None, "must name a shipped mapping or a mapping file")
    relative_to = sources_file.parent if sources_file is not None else None
    return load_mapping(resolve_mapping_path(name.strip(), mappings_dir, relative_to))
