"""Where a gate's time goes, phase by phase, on a workdir whose incoming schema holds a staged load.

    python -m bench.gate.phases WORKDIR AS_OF [--no-publish-hook] [--full-refresh]

WORKDIR holds warehouse.duckdb (after `python -m bench.harness.steps ingest`) and var/. The gate runs as
`kizuna run` runs it (pipeline.gate: gate_and_publish with the rebuild-month recording before publishing) and
publishes: run it on a copy. Each phase is a kizuna function wrapped with a timer (cumulative seconds, calls);
phases nest (validate_table holds the gate frame and the GX runs). Prints one JSON line, then the table:
label, wall seconds, CPU seconds of the process (DuckDB's threads included; what to compare on a busy machine),
calls.
"""

from __future__ import annotations

import collections
import functools
import json
import resource
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from kizuna.core.runtime import quiet_third_parties

quiet_third_parties()

import kizuna.quality.gate as gate  # noqa: E402
import kizuna.quality.plausibility as plausibility  # noqa: E402
import kizuna.quality.validate as validate  # noqa: E402
import kizuna.transform.rebuild_plan as rebuild_plan  # noqa: E402
from kizuna.core.settings import Settings  # noqa: E402

SECONDS: dict[str, float] = collections.defaultdict(float)
CPU_SECONDS: dict[str, float] = collections.defaultdict(float)  # the process's, DuckDB threads included
CALLS: collections.Counter[str] = collections.Counter()
PHASES = {
    gate: [
        "gx_context",
        "normalise_column",
        "is_incremental",
        "exact_duplicates",
        "keep_out_quarantined",
        "validate_table",
        "quarantine_rows",
        "drop_checks",
        "outlier_checks",
        "write_reports",
        "record_verdict",
        "publish_incoming",
    ],
    validate: ["_create_gate_frame", "_read_frame", "gate_scope"],
    plausibility: ["_total_check"],
}


def timed(owner: Any, name: str, label: str | None = None) -> None:
    function = getattr(owner, name)
    label = label or name

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started, cpu_started = time.perf_counter(), cpu()
        try:
            return function(*args, **kwargs)
        finally:
            SECONDS[label] += time.perf_counter() - started
            CPU_SECONDS[label] += cpu() - cpu_started
            CALLS[label] += 1

    setattr(owner, name, wrapper)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    work, as_of = Path(sys.argv[1]), date.fromisoformat(sys.argv[2])
    for owner, names in PHASES.items():
        for name in names:
            if hasattr(owner, name):
                timed(owner, name)
    timed(validate.Validator, "__init__", "GX validator built")
    timed(validate.Validator, "run", "GX run")
    timed(rebuild_plan, "record_staged_month", "before_publish (record_staged_month)")
    hook = None if "--no-publish-hook" in sys.argv else (lambda con: rebuild_plan.record_staged_month(con, as_of))
    settings = Settings(
        source_dir=work,
        warehouse=work / "warehouse.duckdb",
        var_dir=work / "var",
        full_refresh="--full-refresh" in sys.argv,  # every row checked, as on a first load
    )
    started, cpu_started = time.perf_counter(), cpu()
    verdict = gate.gate_and_publish(settings, as_of, before_publish=hook)
    figures = {
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(cpu() - cpu_started, 1),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "passed": verdict.passed,
        "checks": len(verdict.results),
        "checked_rows": sum(verdict.checked_rows.values()),
    }
    print(json.dumps(figures), flush=True)
    for label, seconds in sorted(SECONDS.items(), key=lambda item: -item[1]):
        print(f"| {label} | {seconds:.1f} | {CPU_SECONDS[label]:.1f} | {CALLS[label]} |")


if __name__ == "__main__":
    main()
