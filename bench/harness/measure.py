"""Runs one benchmark step as a child process: wall time and the peak memory of its whole process tree."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULT_PREFIX = "BENCH-RESULT "  # the line a step prints with what it measured inside itself
SAMPLE_SECONDS = 0.2  # a sample reads a few /proc files per process of the tree: cheap at this pace
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


@dataclass
class Measurement:
    """What one step cost. ``seconds`` is the child's wall time including its imports; ``work_seconds`` is what the
    step timed inside itself (the work alone) when it reports it, else the wall time."""

    seconds: float
    peak_mb: float
    largest_process_mb: float
    returncode: int
    work_seconds: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _children_of(pid: int) -> list[int]:
    """Child pids of a process from /proc/<pid>/task/<tid>/children (Linux); [] once it is gone."""
    children: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                children.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return children


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants right now, in MB."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += _rss_kb(pid)
        todo.extend(_children_of(pid))
    return total / 1024


def seconds_of_day(epoch: float) -> float:
    """Local time of day in seconds, the clock Prefect's log lines show."""
    local = time.localtime(epoch)
    return local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec + epoch % 1


class _Sampler(threading.Thread):
    def __init__(self, pid: int, series: list[tuple[float, float]] | None) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_mb = 0.0
        self.series = series
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_SECONDS):
            mb = tree_rss_mb(self.pid)
            self.peak_mb = max(self.peak_mb, mb)
            if self.series is not None:
                self.series.append((seconds_of_day(time.time()), mb))


def stop_tree(root: int) -> None:
    """SIGKILL a step's process tree: its process group, and any descendant that left the group."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(_children_of(pid))
    with contextlib.suppress(OSError):
        os.killpg(root, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _parse_time_v(stderr: str) -> float:
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    return int(found.group(1)) / 1024 if found else 0.0


def child_env(env: dict[str, str | None] | None) -> dict[str, str]:
    """This process's environment with ``env`` applied: a None value removes the variable."""
    merged: dict[str, str | None] = {**os.environ, **(env or {})}
    return {name: value for name, value in merged.items() if value is not None}


def run_measured(
    command: list[str],
    *,
    env: dict[str, str | None] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    timeout: float | None = None,
    series: list[tuple[float, float]] | None = None,
) -> Measurement:
    """Run ``command``; never raise on its failure (the failure is a result too, with the log's tail).

    Peak memory is the larger of two readings: the process tree's summed RSS sampled every 0.2 s (catches
    servers and workers a step starts) and GNU time's exact peak of the largest single process (catches
    peaks shorter than a sample). A step reports its own figures on a line starting with RESULT_PREFIX.
    ``series``, when given, receives every sample as (local seconds of day, MB), to split the peak by phase.
    In ``env`` a None value unsets the variable (an empty one is not the same: Prefect reads PREFECT_API_URL=""
    as a server at no address and logs a failed event emission for every state change).
    """
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*timer, *command],
        cwd=cwd,
        env=child_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group, so a timeout stops the servers it started too
    )
    sampler = _Sampler(proc.pid, series)
    sampler.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        error = None
    except subprocess.TimeoutExpired:
        stop_tree(proc.pid)
        stdout, stderr = proc.communicate()
        error = f"stopped after the {timeout:.0f} s time limit"
    seconds = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {' '.join(command)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}", encoding="utf-8")
    largest = _parse_time_v(stderr)
    measurement = Measurement(seconds, max(sampler.peak_mb, largest), largest, proc.returncode, error=error)
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            reported = json.loads(line[len(RESULT_PREFIX) :])
            measurement.work_seconds = reported.pop("work_seconds", None)
            measurement.details.update(reported)
    if measurement.returncode != 0 and measurement.error is None:
        measurement.error = failure_summary(stdout, stderr, measurement.returncode)
    return measurement


def peak_between(series: list[tuple[float, float]], start: float, end: float) -> float | None:
    """The largest sample taken between two local times of day (a window may cross midnight)."""
    inside = [mb for at, mb in series if (start <= at <= end if start <= end else at >= start or at <= end)]
    return max(inside) if inside else None


def failure_summary(stdout: str, stderr: str, returncode: int) -> str:
    """The cause of a failed step in one line: the last exception line, or an out-of-memory kill."""
    if returncode in (-9, 137) or "Command terminated by signal 9" in stderr:
        return "killed by signal 9 (out of memory?)"
    lines = [
        line.strip()
        for line in (stderr + "\n" + stdout).splitlines()
        if line.strip() and not line.startswith(("\t", "Command being timed", "Command exited"))
    ]
    for line in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception|Exit)\b|^error:|Error:", line):
            return line[:400]
    return (lines[-1] if lines else f"exit code {returncode}")[:400]
