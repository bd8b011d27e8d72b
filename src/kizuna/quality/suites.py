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
class OutlierSpec:
    """One measure checked against the last good load: `value` aggregated per `key` (within `segment`)."""

    name: str
    key: list[str]
    value: str
    column: str
    segment: str | None = None


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
    # column -> normaliser name (kizuna.quality.normalise), applied to the staged table before any check
    normalise: dict[str, str] = field(default_factory=dict)
    # name -> SQL aggregate over the table (derived columns allowed) whose drop against the last good load holds it
    totals: dict[str, str] = field(default_factory=dict)
    outliers: list[OutlierSpec] = field(default_factory=list)


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
    derived = _mapping(path, meta, "derived_columns", "column names to SQL expressions")
    normalise = _mapping(path, meta, "normalise", "column names to a normaliser")
    from kizuna.quality.normalise import NORMALISERS  # the normalisers live with their SQL

    for column, kind in normalise.items():
        if kind not in NORMALISERS:
            raise SuiteFileError(
                f"{path}: meta.normalise.{column} is {kind!r}; known normalisers: {', '.join(sorted(NORMALISERS))}"
            )
    totals = _mapping(path, meta, "totals", "a total's name to an SQL aggregate")
    outliers = []
    for i, spec in enumerate(meta.get("outliers") or []):
        try:
            outliers.append(
                OutlierSpec(
                    name=str(spec["name"]),
                    key=[str(k) for k in spec["key"]],
                    value=str(spec["value"]),
                    column=str(spec.get("column") or spec["key"][0]),
                    segment=spec.get("segment"),
                )
            )
        except (KeyError, TypeError, IndexError) as exc:
            raise SuiteFileError(
                f"{path}: meta.outliers[{i}] needs name, key (a list of columns) and value (an SQL aggregate)"
            ) from exc
    return SuiteFile(
        doc.get("name") or path.stem,
        meta["schema"],
        meta["table"],
        expectations,
        path,
        derived,
        normalise,
        totals,
        outliers,
    )


def _mapping(path: Path, meta: dict[str, Any], key: str, what: str) -> dict[str, str]:
    value = meta.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise SuiteFileError(f"{path}: meta.{key} must map {what}")
    return value


def load_suites(expectations_dir: Path, schema: str) -> list[SuiteFile]:
    """Every suite in the directory that checks a table of `schema`, in file-name order."""
    suites = [load_suite(p) for p in sorted(expectations_dir.glob("*.json"))]
    return [s for s in suites if s.schema == schema]
