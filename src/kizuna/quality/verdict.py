"""The gate's verdict on one load: what the gate returns, records and reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kizuna.quality.normalise import Normalisation
from kizuna.quality.validate import CheckResult


@dataclass
class GateVerdict:
    """Whether the load may go on; critical failures stop it, warnings quarantine rows and are reported."""

    load_id: str
    results: list[CheckResult]
    skipped_suites: list[str] = field(default_factory=list)
    quarantined: dict[str, int] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    report: str | None = None
    normalised: list[Normalisation] = field(default_factory=list)
    published: dict[str, int] = field(default_factory=dict)  # rows per raw table once published
    # rows equal to ones an earlier load quarantined, kept out again without a new report (quality.changed_rows)
    kept_out: dict[str, int] = field(default_factory=dict)
    checked_rows: dict[str, int] = field(default_factory=dict)  # rows row-level expectations checked, per suite

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
            count = f"{r.unexpected_count} rows" if r.unexpected_count else "table"
            lines.append(f"[{r.severity}] {r.suite}: {r.rule} on {r.column or r.table}: {count}")
            lines += [f"    {f}" for f in r.findings]
            if r.advice:
                lines.append(f"    what to do: {r.advice}")
        return "\n".join(lines)

    def describe_changes(self) -> str:
        """Values the gate rewrote before checking (normalisations), one line per column."""
        return "\n".join(f"normalised {n}" for n in self.normalised)
