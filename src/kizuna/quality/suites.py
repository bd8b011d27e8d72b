"""Reading the Great Expectations suites kept as reviewable JSON files in expectations/."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Severity = Literal["critical", "warning"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning")


class SuiteFileError(ValueError):
    """A suite file is not what the gate expects."""


@dataclass(frozen=True)
class SuiteFile:
    """One suite: which table it checks and its expectations in Great Expectations' own JSON shape."""

    name: str
    schema: str
    table: str
    expectations: list[dict[str, Any]]
    path: Path
    # name -> SQL over the table (and {schema} for its load), added to the frame before validation
    derived_columns: dict[str, str] = field(default_factory=dict)


def load_suite(path: Path) -> SuiteFile:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SuiteFileError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from exc
    meta = doc.get("meta") or {}
    for key in ("table", "schema"):
        if not meta.get(key):
            raise SuiteFileError(f"{path}: meta.{key} is missing: say which table the suite checks")
    expectations = doc.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        raise SuiteFileError(f"{path}: 'expectations' must be a non-empty list")
    for i, exp in enumerate(expectations):
        severity = (exp.get("meta") or {}).get("severity")
        if severity not in SEVERITIES:
            raise SuiteFileError(
                f"{path}: expectations[{i}] ({exp.get('type')}) needs meta.severity, one of {list(SEVERITIES)}"
            )
    derived = meta.get("derived_columns") or {}
    if not isinstance(derived, dict) or not all(isinstance(v, str) for v in derived.values()):
        raise SuiteFileError(f"{path}: meta.derived_columns must map column names to SQL expressions")
    return SuiteFile(doc.get("name") or path.stem, meta["schema"], meta["table"], expectations, path, derived)


def load_suites(expectations_dir: Path, schema: str) -> list[SuiteFile]:
    """Every suite in the directory that checks a table of `schema`, in file-name order."""
    suites = [load_suite(p) for p in sorted(expectations_dir.glob("*.json"))]
    return [s for s in suites if s.schema == schema]
