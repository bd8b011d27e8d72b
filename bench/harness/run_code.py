"""Runs the Python code given as its one argument: `python -m bench.harness.run_code CODE`, for timing an import.

Not `python -c CODE`: with pyspark installed, Great Expectations imports pyspark.sql.connect, which takes a
`python -c` process (a __main__ without __spec__ or __file__) for a doctest run and exits it before CODE ends.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    exec(compile(sys.argv[1], "<bench code>", "exec"), {"__name__": "__bench__"})
