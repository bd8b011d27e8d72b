"""Running a piece of Python in a child process, as a script file rather than `python -c`.

With pyspark installed (the Spark test needs it), Great Expectations imports pyspark.sql.connect, whose import
takes a `python -c` process (a __main__ without __spec__ or __file__) for a doctest run and exits it with status 0
before any of our code runs. A script file has a __file__, as the `kizuna` command and Prefect's workers have.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

from kizuna.core.settings import PROJECT_DIR


def python_script(code: str, *args: str) -> list[str]:
    """The command running `code` with `args` (sys.argv[1:]), the repository root importable as under -c."""
    directory = Path(tempfile.mkdtemp(prefix="kizuna-child-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)  # the children have ended when the tests have
    path = directory / "child.py"
    path.write_text(f"import sys\nsys.path.insert(0, {str(PROJECT_DIR)!r})\n{code}", encoding="utf-8")
    return [sys.executable, str(path), *args]
