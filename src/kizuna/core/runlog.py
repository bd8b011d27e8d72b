"""A command's run log: library output (Prefect, dbt, Great Expectations) to var/logs/, progress to the person."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

log = logging.getLogger(__name__)

# Loggers whose WARNING records are meant for the person running the command (not only the log file): kizuna's
# own, and what the flows log through Prefect's run logger ("no scores this run", "waiting for the warehouse").
NOTICE_LOGGERS = ("kizuna", "prefect.flow_runs")

Advance = Callable[[str], None]


def log_path(var_dir: Path, command: str) -> Path:
    """var/logs/<command>-<UTC time>-<pid>.log: one file per command run, sorted by time."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return (var_dir / "logs" / f"{command}-{stamp}-{os.getpid()}.log").resolve()


@dataclass
class Display:
    """What the person at the terminal sees while a command runs: its steps and the warnings meant for them.

    On a terminal, one live line (spinner, step, count); when stderr is piped, one plain line per step, so a log
    collected by cron or CI reads top to bottom without escape codes.
    """

    stream: TextIO
    console: Console = field(init=False)
    _progress: Progress | None = field(init=False, default=None)
    _task: TaskID | None = field(init=False, default=None)
    _step: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        if self.console.is_terminal:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()

    def step(self, name: str, total: int | None = None) -> Advance:
        """A step starts; the returned callback advances it by one item (a table, a suite, a dbt node)."""
        if self._progress is None:
            self.console.print(f"- {name}", markup=False)
            return lambda item: None
        progress = self._progress
        if self._task is not None:
            progress.remove_task(self._task)
            progress.console.print(f"[green]✓[/] {self._step}")  # finished steps stay above the live line
        self._step = name
        task = progress.add_task(name, total=total)
        self._task = task

        def advance(item: str) -> None:
            progress.update(task, advance=1, description=f"{name}: {item}")

        return advance

    def notice(self, text: str) -> None:
        """A warning the person should see now (it is in the log file too)."""
        self.console.print(f"warning: {text}", markup=False, style="yellow")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


_display: Display | None = None


def step(name: str, total: int | None = None) -> Advance:
    """Announce a step of the running command; a no-op (but logged) where nobody watches, as under a worker."""
    log.info("step: %s", name)
    return _display.step(name, total) if _display is not None else (lambda item: None)


class _NoticeHandler(logging.Handler):
    """Shows WARNING records of NOTICE_LOGGERS on the display; errors are the command's to report, once."""

    def __init__(self, display: Display) -> None:
        super().__init__(level=logging.WARNING)
        self.display = display

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.WARNING:
            try:
                self.display.notice(record.getMessage())
            except Exception:  # a display problem must not stop the run
                self.handleError(record)


class _FallbackHandler(logging.StreamHandler[TextIO]):
    """Log lines to the run log where nothing else configured logging. Prefect replaces it when it sets up its own
    (it keeps handlers whose class name starts with an underscore for itself to replace)."""


@dataclass
class Terminal:
    """The streams the command writes to the person: out for results (the summary), err for progress and errors."""

    out: TextIO
    err: TextIO
    log: Path
    display: Display

    @property
    def is_terminal(self) -> bool:
        return self.out.isatty()


def _tee(read_fd: int, log_fd: int, terminal_fd: int) -> None:
    while data := os.read(read_fd, 65536):
        os.write(log_fd, data)
        os.write(terminal_fd, data)


@contextmanager
def session(path: Path, *, verbose: bool = False, restore: bool = True) -> Iterator[Terminal]:
    """Send everything the process writes to file descriptors 1 and 2 into the log at path, and yield the
    original terminal streams for the command's own output.

    Redirecting the descriptors (not sys.stdout) catches what dbt, Great Expectations, Prefect's temporary server,
    DuckDB's C++ code and the interpreter's exit write, wherever they write it. With verbose, the log is also
    copied to the terminal's stderr. restore=False leaves the redirection in place until the process exits, so
    output written at exit (Prefect stopping its temporary server) goes to the log too: for the CLI's process.
    """
    global _display
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", errors="replace", buffering=1)
    err = os.fdopen(os.dup(2), "w", encoding="utf-8", errors="replace", buffering=1)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    if verbose:
        read_fd, write_fd = os.pipe()
        threading.Thread(target=_tee, args=(read_fd, log_fd, err.fileno()), daemon=True).start()
        target = write_fd
    else:
        target = log_fd
    os.dup2(target, 1)
    os.dup2(target, 2)
    if verbose:
        os.close(write_fd)
    # Library log lines then go to the file; where nothing configured logging (no Prefect), kizuna's own INFO
    # lines reach it through a handler of ours.
    root = logging.getLogger()
    own_handler: logging.Handler | None = None
    if not root.handlers:
        own_handler = _FallbackHandler(sys.stderr)
        own_handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"))
        root.addHandler(own_handler)
    kizuna_logger = logging.getLogger("kizuna")
    if kizuna_logger.level == logging.NOTSET:
        kizuna_logger.setLevel(logging.INFO)
    display = Display(err)
    notices = _NoticeHandler(display)
    for name in NOTICE_LOGGERS:
        logging.getLogger(name).addHandler(notices)
    _display = display
    try:
        yield Terminal(out, err, path, display)
    finally:
        _display = None
        display.close()
        for name in NOTICE_LOGGERS:
            logging.getLogger(name).removeHandler(notices)
        sys.stdout.flush()
        sys.stderr.flush()
        out.flush()
        err.flush()
        if restore:
            if own_handler is not None:
                root.removeHandler(own_handler)
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        if not verbose:
            os.close(log_fd)
