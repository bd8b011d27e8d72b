"""The gate's report per load: JSON for machines, one self-contained HTML page for people."""

from __future__ import annotations

import json
from dataclasses import asdict
from html import escape
from pathlib import Path
from typing import Any

from kizuna.quality.verdict import GateVerdict

_STYLE = """
body { font-family: system-ui, 'Hiragino Sans', 'Noto Sans JP', sans-serif; margin: 2rem; color: #1d2433; }
table { border-collapse: collapse; width: 100%; margin-bottom: 2rem; font-size: 14px; }
th, td { border: 1px solid #d8dde6; padding: 6px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f8; }
.fail.critical { background: #fde8e8; } .fail.warning { background: #fff6dd; }
.status { font-weight: bold; } ul { margin: 0; padding-left: 1.2rem; }
"""


def _json_default(value: Any) -> str:
    return str(value)


def write_reports(verdict: GateVerdict, reports_dir: Path) -> Path:
    """Write gate-<load_id>.json and gate-<load_id>.html; return the HTML path."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    stem = reports_dir / f"gate-{verdict.load_id}"
    doc = {
        "load_id": verdict.load_id,
        "passed": verdict.passed,
        "skipped_suites": verdict.skipped_suites,
        "quarantined": verdict.quarantined,
        "normalised": [
            {"table": n.table, "column": n.column, "change": n.change, "count": n.count, "example": str(n.example)}
            for n in verdict.normalised
        ],
        "parameters": verdict.parameters,
        "results": [
            {**{k: v for k, v in asdict(r).items() if k != "rows"}, "findings": [str(f) for f in r.findings]}
            for r in verdict.results
        ],
    }
    stem.with_suffix(".json").write_text(
        json.dumps(doc, indent=2, ensure_ascii=False, default=_json_default), encoding="utf-8"
    )
    html_path = stem.with_suffix(".html")
    html_path.write_text(_html(verdict), encoding="utf-8")
    return html_path


def _html(verdict: GateVerdict) -> str:
    status = "PASSED" if verdict.passed else "FAILED — nothing was published"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>kizuna quality gate {escape(verdict.load_id)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Quality gate, load {escape(verdict.load_id)}</h1>",
        f"<p class='status'>{escape(status)}</p>",
        f"<p>{len(verdict.results)} expectations: {len(verdict.critical_failures)} critical failures, "
        f"{len(verdict.warnings)} warnings.</p>",
    ]
    if verdict.quarantined:
        moved = ", ".join(f"{escape(t)}: {n}" for t, n in verdict.quarantined.items())
        parts.append(f"<p>Rows moved to quarantine.rows: {moved}.</p>")
    if verdict.normalised:
        items = "".join(f"<li>{escape(str(n))}</li>" for n in verdict.normalised)
        parts.append(f"<p>Values rewritten before the checks:</p><ul>{items}</ul>")
    if verdict.skipped_suites:
        parts.append(f"<p>Not checked (no file): {escape(', '.join(verdict.skipped_suites))}.</p>")
    parts.append(
        "<table><tr><th>suite</th><th>rule</th><th>column</th><th>severity</th><th>result</th>"
        "<th>rows</th><th>examples</th></tr>"
    )
    ordered = sorted(verdict.results, key=lambda r: (r.success, r.severity != "critical", r.suite))
    for r in ordered:
        css = "" if r.success else f"fail {r.severity}"
        examples = "".join(f"<li>{escape(str(f))}</li>" for f in r.findings)
        if r.advice:
            examples += f"<li><strong>what to do:</strong> {escape(r.advice)}</li>"
        parts.append(
            f"<tr class='{css}'><td>{escape(r.suite)}</td><td>{escape(r.rule)}</td>"
            f"<td>{escape(r.column or '')}</td><td>{escape(r.severity)}</td>"
            f"<td>{'pass' if r.success else 'FAIL'}</td><td>{r.unexpected_count or ''}</td>"
            f"<td><ul>{examples}</ul></td></tr>"
        )
    parts.append("</table></body></html>\n")
    return "".join(parts)
