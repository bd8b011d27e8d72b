"""Turns the harness's JSON into the marked block at the top of docs/benchmarks.md and a log-log chart of time
against customers. Only the text between the markers is rewritten; the other sections of the page are left alone."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:begin: written by bench/run.py (bench/harness/report.py); edits here are overwritten -->"
END = "<!-- bench:end -->"
BLOCK = re.compile(r"<!-- bench:begin[^>]*-->.*?<!-- bench:end -->\n?", re.S)

# Steps in the order a run does them; the pipeline ones add up to `kizuna run`.
PIPELINE_ORDER = ["ingest", "gate", "dbt-build", "scores", "selection"]
NAMES = {
    "demo": "demo data (apart: not in end to end)",
    "ingest": "ingest",
    "gate": "raw quality gate",
    "dbt-parse": "dbt parse, cold (the first run only; later ones parse partially)",
    "dbt-build": "dbt build (partial parse)",
    "scores": "scores (a fresh run: trains the model)",
    "selection": "campaign selection (6 email campaigns)",
    "render": "render",
    "deliver": "deliver, stand-in answers at once",
    "deliver-50ms": "deliver, stand-in answers in 50 ms",
    "events-load": "load events",
    "ref-sql": "one DuckDB SQL statement",
    "dbt-revenue": "dbt revenue marts",
    "pandas": "pandas",
    "e2e": "`kizuna run` end to end (a fresh run: trains the model)",
    "train-scores": "train scores (weekly flow)",
    "e2e-daily": "`kizuna run` end to end, the weekly model stored (every day after the first)",
    "next-day": "the realistic next day's export (apart: not in end to end)",
    "e2e-day2": "`kizuna run` on day 2 (the realistic next day), incremental",
    "e2e-day2-full": "`kizuna run` on day 2, `--full-refresh`",
}
RUN_NAMES = {
    "e2e": "first (trains the model)",
    "e2e-daily": "weekly model stored",
    "e2e-day2": "day 2, incremental",
    "e2e-day2-full": "day 2, full refresh",
}


def save_results(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def _rows(results: dict[str, Any], step: str, size: int | None = None) -> list[dict[str, Any]]:
    return [r for r in results["steps"] if r["step"] == step and (size is None or r["size"] == size)]


def _get(results: dict[str, Any], step: str, size: int | None) -> dict[str, Any] | None:
    found = _rows(results, step, size)
    return found[-1] if found else None


def _ok(row: dict[str, Any] | None) -> bool:
    return bool(row and row.get("ok"))


def _seconds(row: dict[str, Any] | None) -> float | None:
    """A step's seconds: its process's wall time, or for per-message steps the size's messages at the rate
    measured (work_seconds), since they are measured on a capped number of messages."""
    if not _ok(row) or row is None:
        return None
    if row["group"] == "messages" and row.get("work_seconds") is not None:
        return float(row["work_seconds"])
    return float(row["seconds"])


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 0.1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:,.0f} s" if seconds >= 100 else f"{seconds:.1f} s" if seconds >= 1 else f"{seconds:.2f} s"


def _fmt_mb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:,.0f} MB"


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "—"
    if not row.get("ok"):
        return f"failed ({_short(row.get('error'))}) after {_fmt_s(row['seconds'])}, {_fmt_mb(row['peak_mb'])}"
    approx = "≈ " if row["group"] == "messages" else ""
    return f"{approx}{_fmt_s(_seconds(row))} · {_fmt_mb(row['peak_mb'])}"


def _short(text: str | None, limit: int = 90) -> str:
    text = (text or "").replace("|", "/").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _k(size: int) -> str:
    return (
        f"{size // 1_000_000}M"
        if size >= 1_000_000 and size % 1_000_000 == 0
        else f"{size // 1000}k"
        if size % 1000 == 0
        else f"{size:,}"
    )


def _span(sizes: list[int]) -> str:
    ordered = sorted(sizes)
    return _k(ordered[0]) if len(ordered) == 1 else f"{_k(ordered[0])} to {_k(ordered[-1])}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt_ratio(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}×"


def pipeline_sum(results: dict[str, Any], size: int) -> float | None:
    """Seconds of the steps `kizuna run` does, run one by one; None if any is missing."""
    seconds = [_seconds(_get(results, s, size)) for s in PIPELINE_ORDER]
    return None if any(s is None for s in seconds) else sum(s for s in seconds if s is not None)


def step_table(results: dict[str, Any]) -> list[str]:
    sizes: list[int] = results["sizes"]
    header = "| step | " + " | ".join(f"{s:,} customers" for s in sizes) + " | time ×, last ×10 |"
    lines = [header, "|---|" + "---:|" * len(sizes) + "---:|"]
    groups = [
        ["demo", "next-day", "dbt-parse"],
        PIPELINE_ORDER,
        ["e2e", "e2e-daily", "e2e-day2", "e2e-day2-full", "train-scores"],
        ["ref-sql", "dbt-revenue", "pandas"],
        ["render", "deliver", "deliver-50ms", "events-load"],
    ]
    for group in groups:
        for step in group:
            rows = [_get(results, step, s) for s in sizes]
            if not any(rows):
                continue
            growth = _growth([_seconds(r) for r in rows], sizes)
            name = NAMES.get(step, step) + (" ¹" if any(r and r.get("source") == "e2e" for r in rows) else "")
            lines.append(f"| {name} | " + " | ".join(_cell(r) for r in rows) + f" | {growth} |")
            if step == "selection":
                sums = [pipeline_sum(results, s) for s in sizes]
                lines.append(
                    "| *sum of the steps above* | "
                    + " | ".join(_fmt_s(s) for s in sums)
                    + f" | {_growth(sums, sizes)} |"
                )
    loads = []
    for size in sizes:
        values = [r["load"] for r in results["steps"] if r["size"] == size and "load" in r]
        loads.append(f"{min(values):.1f}–{max(values):.1f}" if values else "—")
    lines.append("| *load average (1 min) as the steps ended* | " + " | ".join(loads) + " | |")
    notes = [
        f"{NAMES.get(r['step'], r['step'])} at {r['size']:,}: {r['note']}" for r in results["steps"] if r.get("note")
    ]
    return lines + (["", *notes] if notes else [])


def _growth(seconds: list[float | None], sizes: list[int]) -> str:
    pairs = [(a, b, sa, sb) for a, b, sa, sb in zip(seconds, seconds[1:], sizes, sizes[1:], strict=False) if a and b]
    if not pairs:
        return "—"
    a, b, sa, sb = pairs[-1]
    return f"{b / a:.1f}× for {sb / sa:.0f}× customers"


E2E_PHASES = {
    "outside_flow_seconds": "before and after the flow (imports, temporary server)",
    "ingest": "ingest",
    "quality-gate": "gate",
    "prepare-marts-inputs": "ops tables",
    "dbt-build": "dbt build",
    "score": "scores",
    "campaigns": "8 campaigns (select, render, outbox)",
}


def e2e_table(results: dict[str, Any]) -> list[str]:
    """Where `kizuna run`'s time went, from its Prefect log (bench/harness/plan.py parse_e2e)."""
    rows = [r for step in RUN_NAMES for r in _rows(results, step) if r.get("ok") and r.get("details", {}).get("phases")]
    if not rows:
        return []
    lines = [
        "| customers | run | " + " | ".join(E2E_PHASES.values()) + " | total |",
        "|---:|---|" + "---:|" * (len(E2E_PHASES) + 1),
    ]
    for row in rows:
        d = row["details"]
        peaks = d.get("phase_peak_mb", {})
        cells = []
        for key in E2E_PHASES:
            seconds = d.get(key) if key == "outside_flow_seconds" else d["phases"].get(key)
            peak = peaks.get(key)
            cells.append(_fmt_s(seconds) + (f" · {_fmt_mb(peak)}" if peak else ""))
        total = f"{_fmt_s(row['seconds'])} · {_fmt_mb(row['peak_mb'])}"
        run = RUN_NAMES[row["step"]]
        lines.append(f"| {row['size']:,} | {run} | " + " | ".join(cells) + f" | {total} |")
    parse = [r["details"] for r in rows if r["details"].get("dbt_partial_parse") is not None]
    note = ""
    if parse:
        p = parse[-1]
        note = (
            f"dbt inside `kizuna run` at {rows[-1]['size']:,}: partial parsing "
            f"{'on' if p['dbt_partial_parse'] else 'off'}, {p['dbt_files_parsed']} files parsed again, "
            f"{p['dbt_load_seconds']} s to load the project."
        )
    return [
        "",
        "Inside `kizuna run`: each task's time from the run's Prefect log (tasks run one after another) and the "
        "peak memory of the run's process tree while it ran (¹ in the table above: the pipeline steps' figures "
        "come from here unless `--separate-steps` ran them in processes of their own):",
        "",
        *lines,
        "",
        note,
    ]


def day_two_table(results: dict[str, Any]) -> list[str]:
    """Day 2 incremental beside a full refresh of the same day, per size: the cost curve of a day after the first."""
    sizes = [s for s in results["sizes"] if _get(results, "e2e-day2", s) or _get(results, "e2e-day2-full", s)]
    if not sizes:
        return []
    lines = [
        "| customers | incremental | full refresh | incremental saves | incremental: its largest parts |",
        "|---:|---:|---:|---:|---|",
    ]
    for size in sizes:
        incremental, full = _get(results, "e2e-day2", size), _get(results, "e2e-day2-full", size)
        a, b = _seconds(incremental), _seconds(full)
        saved = f"{1 - a / b:.0%}" if a is not None and b else "—"
        parts = _phases_text(incremental).removeprefix("inside the run: ") if _ok(incremental) and incremental else ""
        lines.append(f"| {size:,} | {_cell(incremental)} | {_cell(full)} | {saved} | {parts} |")
    return [
        "### Day 2: the realistic next day, incremental beside a full refresh",
        "",
        "Day 1's `kizuna run` leaves its warehouse and var/; the next day's export (`kizuna demo-data --next-day-of`, "
        "0.5% of every file changed, backdated changes included) then runs on a copy of them incrementally and on "
        "another copy with `--full-refresh`, one after the other in this run (docs/incremental.md). Each phase "
        "of both is in the table above.",
        "",
        *lines,
        "",
    ]


def reference_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| customers | one SQL statement | dbt revenue marts | dbt ÷ SQL | pandas | pandas ÷ SQL | pandas ÷ dbt | same KPIs |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    agree = results.get("kpis_agree", {})
    for size in results["sizes"]:
        sql, dbt, pandas = (_get(results, s, size) for s in ("ref-sql", "dbt-revenue", "pandas"))
        if not any((sql, dbt, pandas)):
            continue
        s, d, p = _seconds(sql), _seconds(dbt), _seconds(pandas)
        check = agree.get(str(size))
        same = (
            "—"
            if not check
            else (
                "yes (" + ", ".join(check["compared"]) + ")"
                if not check["problems"]
                else f"no: {len(check['problems'])} columns differ (below)"
            )
        )
        lines.append(
            f"| {size:,} | {_cell(sql)} | {_cell(dbt)} | {_fmt_ratio(_ratio(d, s), 2)} | {_cell(pandas)} | "
            f"{_fmt_ratio(_ratio(p, s))} | {_fmt_ratio(_ratio(p, d))} | {same} |"
        )
    return lines


def kpi_differences(results: dict[str, Any]) -> list[str]:
    """Say where the references and the marts disagree: their times then compare slightly different work."""
    lines = []
    for size, check in results.get("kpis_agree", {}).items():
        pairs: dict[str, list[str]] = {}
        for problem in check["problems"]:  # "<a> differs from <b> in <column>" (bench/revenue/run.py compare)
            found = re.match(r"(\w+) differs from (\w+) in (\w+)", problem)
            key, column = (f"{found.group(1)} and {found.group(2)}", found.group(3)) if found else (problem, "")
            pairs.setdefault(key, []).append(column)
        for pair, columns in pairs.items():
            lines.append(f"At {int(size):,} customers {pair} differ in {', '.join(c for c in columns if c)}.")
    return [" ".join(lines), ""] if lines else []


def _rate(row: dict[str, Any] | None, key: str = "per_second") -> float | None:
    if not _ok(row) or row is None:
        return None
    value = row.get("details", {}).get(key)
    if value is None and row.get("work_seconds") and row.get("details", {}).get("count"):
        value = row["details"]["count"] / row["work_seconds"]
    return float(value) if value is not None else None


def _fmt_rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def message_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| customers | messages | measured on | render /s, one core (bare-Jinja reference) | deliver at once /s | "
        "deliver 50 ms /s | events loaded /s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in results["sizes"]:
        render = _get(results, "render", size)
        deliver = _get(results, "deliver", size)
        if render is None and deliver is None:
            continue
        count = (render or deliver or {}).get("details", {}).get("count", 0)
        measured = min(count, results["max_messages"])
        reference = _rate(render, "reference_per_second")
        lines.append(
            f"| {size:,} | {count:,} | {measured:,} | {_fmt_rate(_rate(render))} ({_fmt_rate(reference)}) | "
            f"{_fmt_rate(_rate(deliver))} | {_fmt_rate(_rate(_get(results, 'deliver-50ms', size)))} | "
            f"{_fmt_rate(_rate(_get(results, 'events-load', size)))} |"
        )
    return lines


def fixed_table(results: dict[str, Any]) -> list[str]:
    lines = ["| what | seconds | peak | figure |", "|---|---:|---:|---|"]
    for row in results["steps"]:
        if row["group"] != "fixed":
            continue
        details = row.get("details", {})
        figure = ""
        if row["step"].startswith("prefect"):
            figure = (
                f"server start {details.get('server_start_seconds', '—')} s, empty flow run "
                f"{details.get('empty_flow_run_seconds', '—')} s, {details.get('per_task_ms', '—')} ms per task "
                f"({details.get('tasks', '—')} tasks)"
            )
        elif row["step"] == "events-receive":
            figure = (
                f"{_fmt_rate(_rate(row))} events/s accepted, p99 {details.get('p99_ms', '—')} ms, "
                f"lost {details.get('lost', '—')}"
            )
        elif row["step"] == "deliver-official":
            figure = f"{_fmt_rate(_rate(row))} messages/s ({details.get('count', 0):,} messages)"
        status = "" if row.get("ok") else f"failed: {_short(row.get('error'))}"
        lines.append(f"| {row['label']} | {_fmt_s(row['seconds'])} | {_fmt_mb(row['peak_mb'])} | {figure or status} |")
    parse = next((r for r in results["steps"] if r["step"] == "dbt-parse" and r.get("ok")), None)
    if parse:
        lines.append(
            f"| dbt parse at {parse['size']:,} customers: cold / partial (what each later build pays) | "
            f"{parse.get('work_seconds', 0):.1f} / {parse['details'].get('partial_parse_seconds', 0):.1f} s | "
            f"{_fmt_mb(parse['peak_mb'])} | {parse['details'].get('nodes', '—')} nodes; the process "
            f"took {_fmt_s(parse['seconds'])} with dbt's imports |"
        )
    return lines


def _largest_steps(results: dict[str, Any], size: int, n: int = 3) -> str:
    rows = [r for s in PIPELINE_ORDER if (r := _get(results, s, size)) and r.get("ok")]
    rows.sort(key=lambda r: r["seconds"], reverse=True)
    return ", ".join(f"{NAMES[r['step']]} {_fmt_s(r['seconds'])}" for r in rows[:n])


def _phases_text(run: dict[str, Any]) -> str:
    """A `kizuna run` row's four largest parts, from its Prefect log."""
    phases = dict(run.get("details", {}).get("phases", {}))
    if "outside_flow_seconds" in run.get("details", {}):
        phases["outside_flow_seconds"] = run["details"]["outside_flow_seconds"]
    largest = sorted(phases.items(), key=lambda kv: kv[1], reverse=True)[:4]
    return f"inside the run: {', '.join(f'{E2E_PHASES.get(k, k)} {_fmt_s(v)}' for k, v in largest)}" if largest else ""


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None, str]]:
    """(target, figure, met or None when not measured, what explains a gap)."""
    sizes: list[int] = results["sizes"]
    big = max(sizes)
    out: list[tuple[str, str, bool | None, str]] = []
    e2e = _get(results, "e2e", big)
    at = f"at {big:,} customers"
    if e2e is None:
        out.append((f"`kizuna run` {at} under 3 minutes, peak under 4 GB", "not run", None, ""))
    elif not e2e.get("ok"):
        out.append(
            (
                f"`kizuna run` {at} under 3 minutes, peak under 4 GB",
                _cell(e2e),
                False,
                f"the run failed: {_short(e2e.get('error'), 200)}",
            )
        )
    else:
        seconds, peak = e2e["seconds"], e2e["peak_mb"]
        cause = (_phases_text(e2e) or f"the largest steps {at}: {_largest_steps(results, big)}") + (
            f"; load average {e2e.get('load', '?')} when it ended"
        )
        out.append((f"`kizuna run` {at} under 3 minutes", _fmt_s(seconds), seconds < 180, cause))
        biggest = max(
            (r for r in results["steps"] if r["size"] == big and r["group"] == "pipeline"),
            key=lambda r: r["peak_mb"],
            default=None,
        )
        peak_cause = (
            f"the largest step alone: {NAMES[biggest['step']]} {_fmt_mb(biggest['peak_mb'])}" if biggest else ""
        )
        out.append((f"`kizuna run` {at}: peak memory under 4 GB", _fmt_mb(peak), peak < 4096, peak_cause))
        daily = _get(results, "e2e-daily", big)
        if daily is not None:
            out.append(
                (
                    f"`kizuna run` {at} with the weekly model stored, under 3 minutes",
                    _fmt_s(daily["seconds"]) if daily.get("ok") else _cell(daily),
                    bool(daily.get("ok")) and daily["seconds"] < 180,
                    _phases_text(daily) + f"; load average {daily.get('load', '?')} when it ended",
                )
            )
    day2 = _get(results, "e2e-day2", big)
    if day2 is not None:
        full = _get(results, "e2e-day2-full", big)
        out.append(
            (
                f"`kizuna run` {at} on the realistic next day (incremental), under 3 minutes",
                _fmt_s(day2["seconds"]) if day2.get("ok") else _cell(day2),
                bool(day2.get("ok")) and day2["seconds"] < 180,
                _phases_text(day2)
                + (f"; the same day with --full-refresh: {_cell(full)}" if full else "")
                + f"; load average {day2.get('load', '?')} when it ended",
            )
        )
    if len(sizes) >= 2:
        out.append(_linear_target(results, sorted(sizes)[-2], big))
    out += _revenue_targets(results)
    rendered = [r for r in _rows(results, "render") if _rate(r)]
    if rendered:
        best = max(rendered, key=lambda r: _rate(r) or 0.0)
        rate, reference = _rate(best) or 0.0, _rate(best, "reference_per_second")
        out.append(
            (
                "rendering ≥ 10,000 messages/s per core (the whole message a campaign sends, CPU time of one core)",
                f"{rate:,.0f}/s",
                rate >= 10_000,
                f"subject, text, checks, unsubscribe token and headers on top of the HTML render; the bare-Jinja "
                f"reference renders {reference:,.0f}/s (see the Rendering section)"
                if reference
                else "",
            )
        )
    for step, limit, label in (("deliver", 2000, "at once"), ("deliver-50ms", 500, "with 50 ms per answer")):
        measured = [r for r in _rows(results, step) if _rate(r)]
        if measured:  # the largest batch: start-up costs weigh least there
            row = max(measured, key=lambda r: r["details"].get("count", 0))
            rate = _rate(row) or 0.0
            out.append(
                (
                    f"delivery ≥ {limit:,} messages/s to a stand-in answering {label} (pooled transport)",
                    f"{rate:,.0f}/s ({min(row['details'].get('count', 0), results['max_messages']):,} messages)",
                    rate >= limit,
                    "client and stand-in share the 2 cores with the rest of the machine's load",
                )
            )
    official = _rate(_get(results, "deliver-official", None))
    if official:
        out.append(
            (
                "delivery ≥ 2,000 messages/s with the official client (the default transport)",
                f"{official:,.0f}/s",
                official >= 2000,
                "a new urllib opener and connection per request; see the Delivery section",
            )
        )
    receive = _rate(_get(results, "events-receive", None))
    if receive:
        out.append(("webhook ≥ 2,000 events/s with signatures checked", f"{receive:,.0f}/s", receive >= 2000, ""))
    prefect = _get(results, "prefect", None)
    if _ok(prefect) and prefect:
        d = prefect["details"]
        out.append(
            (
                "Prefect temporary server start ≈ 10 s (already migrated PREFECT_HOME)",
                f"{d['server_start_seconds']} s",
                d["server_start_seconds"] <= 15,
                f"load average {prefect.get('load', '?')} when it ended",
            )
        )
        out.append(("Prefect ≈ 20 ms per task run", f"{d['per_task_ms']} ms", d["per_task_ms"] <= 30, ""))
    tasks = [r.get("details", {}).get("task_runs") for r in _rows(results, "e2e") if r.get("ok")]
    if any(tasks):
        most = max(t for t in tasks if t)
        out.append(("tens of Prefect tasks per `kizuna run`, not thousands", f"{most} task runs", most < 100, ""))
    return out


def _linear_target(results: dict[str, Any], small: int, big: int) -> tuple[str, str, bool | None, str]:
    """1M within 12× of 100k (1.2× the size ratio): end to end if both ran, else step by step."""
    limit = 1.2 * big / small
    target = f"about linear: {big:,} customers take at most {limit:.0f}× the {small:,} run"
    a, b = _seconds(_get(results, "e2e", small)), _seconds(_get(results, "e2e", big))
    if a is not None and b is not None:
        return (
            f"{target} (`kizuna run`)",
            f"{b / a:.1f}×",
            b / a <= limit,
            f"the steps that grew most: {_fastest_growing(results, small, big)}",
        )
    growth = [
        (b / a, s)
        for s in PIPELINE_ORDER
        if (a := _seconds(_get(results, s, small))) and (b := _seconds(_get(results, s, big)))
    ]
    if not growth:
        return (target, "not measured", None, "")
    worst, step = max(growth)
    missing = [NAMES[s] for s in PIPELINE_ORDER if s not in {g[1] for g in growth}]
    return (
        f"{target} (each pipeline step; `kizuna run` did not run at both sizes)",
        f"at most {worst:.1f}× ({NAMES[step]})" + (f"; not at both sizes: {', '.join(missing)}" if missing else ""),
        worst <= limit,
        f"the steps that grew most: {_fastest_growing(results, small, big)}",
    )


def _revenue_targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None, str]]:
    """The dbt revenue marts against the references, at the largest size where both ran."""
    out: list[tuple[str, str, bool | None, str]] = []
    for reference, target, better in (
        ("ref-sql", "revenue marts within 1.5× the single SQL statement", lambda dbt, ref: dbt / ref <= 1.5),
        ("pandas", "revenue marts at least 3× faster than pandas", lambda dbt, ref: ref / dbt >= 3),
    ):
        both = [
            (size, d, r)
            for size in sorted(results["sizes"])
            if (d := _seconds(_get(results, "dbt-revenue", size))) and (r := _seconds(_get(results, reference, size)))
        ]
        if not both:
            continue
        size, dbt, ref = both[-1]
        row = _get(results, "dbt-revenue", size) or {}
        startup = row["seconds"] - row["work_seconds"] if row.get("work_seconds") is not None else None
        cause = (
            f"dbt's start-up (Python, imports) is {startup:.1f} s of its {_fmt_s(dbt)}; see the Revenue marts section"
            if startup is not None
            else ""
        )
        ratio = dbt / ref if reference == "ref-sql" else ref / dbt
        out.append((f"{target} at {size:,} customers", f"{ratio:.2f}×", better(dbt, ref), cause))
    return out


def _fastest_growing(results: dict[str, Any], small: int, big: int) -> str:
    growth = []
    for step in PIPELINE_ORDER:
        a, b = _seconds(_get(results, step, small)), _seconds(_get(results, step, big))
        if a and b:
            growth.append((b / a, step))
    growth.sort(reverse=True)
    return ", ".join(f"{NAMES[s]} {g:.1f}×" for g, s in growth[:3])


def target_table(results: dict[str, Any]) -> list[str]:
    lines = ["| target | measured | met | what explains a gap |", "|---|---:|:---:|---|"]
    for target, figure, met, cause in targets(results):
        mark = "—" if met is None else "✓" if met else "✗"
        lines.append(f"| {target} | {figure} | {mark} | {cause if met is False else ''} |")
    return lines


# Line style per kind of series in the chart: (dash pattern, width).
KINDS = {"end to end": ((1, 0), 4), "step": ((1, 0), 1.5), "reference": ((6, 3), 1.5), "guide": ((2, 4), 1)}


END_TO_END_CHARTED = ("e2e", "e2e-day2", "e2e-day2-full")


def chart_name(step: str) -> str:
    """A step's name in the chart's legend: short, as the legend's width is measured by the renderer's guess."""
    return f"kizuna run, {RUN_NAMES[step]}" if step in RUN_NAMES else NAMES[step]


def chart_records(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The chart's points: each step, the end-to-end runs (day 1 and both day-2 runs) and a linear guide."""
    records = []
    shown = [
        *PIPELINE_ORDER,
        *END_TO_END_CHARTED,
        "ref-sql",
        "dbt-revenue",
        "pandas",
        "render",
        "deliver",
        "events-load",
    ]
    for row in results["steps"]:
        if row["step"] in shown and row.get("ok") and row["size"]:
            step = row["step"]
            kind = (
                "end to end" if step in END_TO_END_CHARTED else "reference" if row["group"] == "reference" else "step"
            )
            records.append({"customers": row["size"], "seconds": _seconds(row), "what": chart_name(step), "kind": kind})
    e2e = sorted((r for r in records if r["what"] == chart_name("e2e")), key=lambda r: r["customers"])
    if e2e:  # what linear growth from the smallest first run would look like
        base = e2e[0]
        for size in results["sizes"]:
            records.append(
                {
                    "customers": size,
                    "seconds": base["seconds"] * size / base["customers"],
                    "what": "linear from the smallest run",
                    "kind": "guide",
                }
            )
    return records


def chart(results: dict[str, Any], path: Path) -> None:
    """Seconds against customers on log axes, one line per step: a slope of 1 is linear growth."""
    import altair as alt
    import pandas as pd

    records = chart_records(results)
    if not records:
        return
    frame = pd.DataFrame.from_records(records)
    figure = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            # ticks at the measured sizes only: a log axis's own ticks (20,000, 30,000, ...) overlap at this width
            x=alt.X(
                "customers:Q",
                scale=alt.Scale(type="log"),
                title="customers (log)",
                axis=alt.Axis(values=sorted(results["sizes"]), format=","),
            ),
            y=alt.Y("seconds:Q", scale=alt.Scale(type="log"), title="seconds, wall (log)"),
            color=alt.Color(
                "what:N",
                title=None,
                scale=alt.Scale(scheme="tableau20"),
                legend=alt.Legend(labelLimit=0),  # whole names: the default cuts them at 160 px
            ),
            strokeDash=alt.StrokeDash(
                "kind:N",
                title=None,
                scale=alt.Scale(domain=list(KINDS), range=[list(d) for d, _ in KINDS.values()]),
            ),
            strokeWidth=alt.StrokeWidth(
                "kind:N",
                legend=None,
                scale=alt.Scale(domain=list(KINDS), range=[w for _, w in KINDS.values()]),
            ),
            tooltip=["what", "customers", "seconds"],
        )
        .properties(
            width=560,
            height=360,
            padding={"left": 5, "top": 5, "bottom": 5, "right": 60},
            title=f"kizuna: time against size ({results['date'][:10]})",
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.save(str(path))


PAGE_CACHE_WORDS = {
    "warm": "every `kizuna run` started with its source files and warehouse read once (in the page cache: warm reads)",
    "cold": "every `kizuna run` started on a dropped page cache (cold reads from disk)",
    "as-is": "the page cache was left as the steps before each `kizuna run` left it (warm and cold reads mixed)",
}


def page_cache_sentence(results: dict[str, Any]) -> str:
    """Which page-cache state the end-to-end figures are in (bench.harness.cache); results before it: as-is."""
    mode = results.get("page_cache", "as-is")
    return f"Page cache: {mode}, {PAGE_CACHE_WORDS.get(mode, mode)}."


def block(results: dict[str, Any], chart_name: str | None) -> str:
    m = results["machine"]
    v = results["versions"]
    load_end = m.get("load_at_end", ["?"])
    sizes = ", ".join(f"{s:,}" for s in results["sizes"])
    lines = [
        BEGIN,
        f"## The whole pipeline, {_span(results['sizes'])} customers",
        "",
        f"`make bench` (`{results.get('command') or 'python bench/run.py'}`)"
        + (" **smoke run**" if results.get("smoke") else "")
        + f" on {results['date'][:10]}, commit {results.get('commit') or '?'}: {m['cores']} cores ({m['cpu']}), "
        f"{m['ram_gb']} GB RAM, {m['system']}, load average {m['load_at_start'][0]} at the start and "
        f"{load_end[0]} at the end (shared machine: compare ratios measured in the same run rather than absolute "
        f"times). DuckDB {v.get('duckdb')}, dbt-core {v.get('dbt-core')}, Prefect {v.get('prefect')}, "
        f"pandas {v.get('pandas')}. Sizes: {sizes} demo customers as of {results['as_of']} (seed {results['seed']}); "
        f"the whole run took {_fmt_s(results.get('total_seconds'))}. {page_cache_sentence(results)}"
        + (f" Left out of this run (--skip): {', '.join(results['skipped'])}." if results.get("skipped") else ""),
        "",
        "Each step runs in its own process, calling what `kizuna run` calls: seconds are that process's wall "
        "time including its imports; memory is the peak resident memory of its process tree (sampled every "
        "0.2 s, and GNU time's exact peak of its largest process). Steps marked ¹ are the tasks of the "
        "end-to-end run itself (below). The raw figures, with each step's load average, are in "
        "`bench/results/latest.json`.",
        "",
        "### Time · peak memory per step",
        "",
        *step_table(results),
        "",
        *e2e_table(results),
        "",
        *day_two_table(results),
        "End to end runs on a fresh warehouse with the dbt partial-parse state the parse step left (as every run "
        "after the first finds it), Prefect's temporary server on an already migrated PREFECT_HOME, and the outbox "
        "as the email backend (campaigns cap their audiences, so sending does not grow with customers).",
        "",
        "### The same KPIs, computed the ways a user could instead",
        "",
        "The monthly MRR KPIs from the same raw tables: one hand-written DuckDB statement (the near-limit "
        "reference), the dbt revenue marts alone (models only; dbt start-up included) and pandas as an analyst "
        "would write it (bench/revenue/).",
        "",
        *reference_table(results),
        "",
        *kpi_differences(results),
        "### Per-message steps",
        "",
        f"The day's emails at each size: {results['messages_per_customer']:.0%} of the customers, two events "
        f"loaded per message. Rates do not depend on how many messages there are, so each is measured on at most "
        f"{results['max_messages']:,} messages (rendering on 5,000, best of 2 rounds, CPU time of one core) and "
        "the step's time at a size (≈ in the first table) is that size's messages at the measured rate. "
        "Delivery goes through `kizuna.campaigns.run.deliver`, send ledger included, to the SendGrid stand-in of "
        "the tests in its own process (bench/delivery/).",
        "",
        *message_table(results),
        "",
        "### Fixed costs (do not grow with customers)",
        "",
        *fixed_table(results),
        "",
        "### Targets (issue 11)",
        "",
        *target_table(results),
        "",
    ]
    if chart_name:
        lines += [f"![Seconds against customers, log-log: a slope of 1 is linear growth]({chart_name})", ""]
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_docs(results: dict[str, Any], docs: Path, chart_path: Path | None) -> None:
    """Rewrite the marked block (or put it first, under the page title); leave everything else as it is."""
    chart_name = None
    if chart_path is not None:
        chart(results, chart_path)
        chart_name = chart_path.name if chart_path.parent == docs.parent else str(chart_path)
    text = block(results, chart_name)
    current = docs.read_text(encoding="utf-8") if docs.exists() else ""
    if BLOCK.search(current):
        updated = BLOCK.sub(lambda _: text, current, count=1)
    else:
        body = current.lstrip("\n")
        title, rest = ("", body)
        if body.startswith("# "):
            title, _, rest = body.partition("\n")
            title += "\n\n"
        else:
            title = "# Benchmarks\n\n"
        updated = title + text + ("\n" + rest.lstrip("\n") if rest.strip() else "")
    docs.write_text(updated, encoding="utf-8")


def steps_of(results: dict[str, Any]) -> Iterable[str]:
    return sorted({r["step"] for r in results["steps"]})
