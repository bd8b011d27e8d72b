"""docs/reliability.md maps each promise and attack to tests: every test it names must exist."""

from __future__ import annotations

import re

from kizuna.core.settings import PROJECT_DIR

DOC = PROJECT_DIR / "docs" / "reliability.md"
# `tests/x.py`, `tests/x.py::test_name`, and `::test_name` (a further test of the file named last). A name may
# be shortened with a trailing "…" (`::test_sigkill_during_ingest_…`).
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?(?:::(\w+)(…)?)?`")


def test_every_test_the_reliability_doc_names_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    current: str | None = None
    checked, missing = 0, []
    for match in REFERENCE.finditer(text):
        file, name, shortened = match.groups()
        if file:
            current = file
            if not (PROJECT_DIR / file).is_file():
                missing.append(file)
                continue
        if not name:
            continue
        assert current, f"`::{name}` before any test file is named"
        source = (PROJECT_DIR / current).read_text(encoding="utf-8")
        pattern = rf"def {re.escape(name)}" + ("" if shortened else r"\(")
        if not re.search(pattern, source):
            missing.append(f"{current}::{name}{shortened or ''}")
        checked += 1
    assert checked > 50, "the doc no longer names tests the way this check reads them"
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"
