"""Every benchmark command the docs give starts as written: `python bench/x.py` or `python -m bench.x`.

A script run by its path has its own folder first on sys.path, not the repo root, so a script importing `bench.` or
`tests.` must be documented as `python -m ...` (run from the repo root). Each command's module is imported in a fresh
interpreter the way its command would (without running main), outside the repo and without PYTHONPATH.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from kizuna.core.settings import PROJECT_DIR

COMMAND = re.compile(r"python (?:-m (bench(?:\.\w+)+)|(bench/[\w/]+\.py))")

DRIVER = """
import json, runpy, sys
root, commands = sys.argv[1], json.loads(sys.argv[2])
base = [p for p in sys.path if p not in ("", root)]
failures = []
for module, script in commands:
    for name in [m for m in sys.modules if m.split(".")[0] in ("bench", "tests")]:
        del sys.modules[name]
    try:
        if module:
            sys.path[:] = [root, *base]
            runpy.run_module(module, run_name="__check__")
        else:
            sys.path[:] = [root + "/" + script.rsplit("/", 1)[0], *base]
            runpy.run_path(root + "/" + script, run_name="__check__")
    except Exception as error:
        failures.append(f"python {'-m ' + module if module else script}: {type(error).__name__}: {error}")
print("\\n".join(failures))
"""


def documented_commands() -> set[tuple[str, str]]:
    pages = [PROJECT_DIR / "README.md", PROJECT_DIR / "Makefile", *(PROJECT_DIR / "docs").glob("*.md")]
    pages += (PROJECT_DIR / "bench").rglob("*.py")
    return {m.groups("") for page in pages for m in COMMAND.finditer(page.read_text(encoding="utf-8"))}


def test_every_documented_benchmark_command_imports_as_written(tmp_path: Path) -> None:
    import json

    commands = sorted(documented_commands())
    assert len(commands) >= 15, commands  # the pattern still finds the docs' commands
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(PROJECT_DIR), json.dumps(commands)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "", done.stdout
