"""Starts one of the tests' HTTP stand-ins (tests/standins/) in its own process for a benchmark.

A stand-in run as `python -m tests.standins.NAME ...` prints its base URL on its first line, then serves on
127.0.0.1 until it is terminated.
"""

from __future__ import annotations

import subprocess
import sys

from kizuna.core.settings import PROJECT_DIR


def start_standin(name: str, *args: object) -> tuple[subprocess.Popen[str], str]:
    """The running stand-in `tests.standins.<name>` started with `args`, and its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", f"tests.standins.{name}", *map(str, args)],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise SystemExit(f"the {name} stand-in did not start (said {url!r})")
    return process, url
