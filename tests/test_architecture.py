"""The layers are enforced: import-linter's contracts (pyproject.toml) fail when an import runs the wrong way."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ops.conftest import tool

ROOT = Path(__file__).parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    return subprocess.run(
        [tool("lint-imports"), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The code and its contracts, copied so a test can add a wrong import without touching the checkout."""
    root = tmp_path_factory.mktemp("layers")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "src" / "kizuna", root / "src" / "kizuna", ignore=ignore)
    shutil.copytree(ROOT / "flows", root / "flows", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", root)
    return root


def test_the_code_keeps_every_contract(copy: Path) -> None:
    done = lint_imports(copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import", "contract"),
    [
        ("campaigns/select.py", "import flows.daily", "cli → flows → pipeline → domain → core"),
        ("quality/gate.py", "from kizuna.cli import main", "cli → flows → pipeline → domain → core"),
        ("core/warehouse.py", "import kizuna.pipeline", "cli → flows → pipeline → domain → core"),
        ("email/message.py", "import kizuna.campaigns.spec", "email and tracking know nothing of campaigns"),
        ("scoring/model.py", "import prefect", "Prefect only in flows/"),
        ("email/paths.py", "import kizuna.email.render", "no import cycles"),
        ("campaigns/holds.py", "import duckdb", "the warehouse's engine (duckdb) only behind kizuna.core.connection"),
        ("core/warehouse.py", "from duckdb import Error", "the warehouse's engine (duckdb) only behind"),
    ],
    ids=[
        "domain-imports-flows",
        "domain-imports-cli",
        "core-imports-pipeline",
        "email-imports-campaigns",
        "domain-imports-prefect",
        "cycle-in-a-package",
        "domain-imports-duckdb",
        "core-imports-duckdb-beside-the-connection",
    ],
)
def test_a_wrong_import_breaks_a_contract(copy: Path, module: str, wrong_import: str, contract: str) -> None:
    path = copy / "src" / "kizuna" / module
    original = path.read_text(encoding="utf-8")
    path.write_text(original + f"\n{wrong_import}  # noqa: E402\n", encoding="utf-8")
    try:
        done = lint_imports(copy)
    finally:
        path.write_text(original, encoding="utf-8")
    assert done.returncode == 1, done.stdout + done.stderr
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, done.stdout


MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80
# Allowed to be longer, and why (keep this list short).
LONGER: dict[str, str] = {
    # The one reader of KIZUNA_* (README, "Settings"): every field with its description, read in one place.
    "src/kizuna/core/settings.py": "the catalogue of every setting, one field each",
}


def sizes() -> list[str]:
    """Files over MAX_FILE_LINES and functions over MAX_FUNCTION_LINES in src/ and flows/, as 'path[:function] n'."""
    found = []
    for path in sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "flows").rglob("*.py")]):
        name = str(path.relative_to(ROOT))
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_FILE_LINES and name not in LONGER:
            found.append(f"{name} {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES and f"{name}:{node.name}" not in LONGER:
                    found.append(f"{name}:{node.name} {length} lines")
    return found


def test_no_file_or_function_is_too_long_to_read() -> None:
    assert sizes() == [], "split these into named parts (or add them to LONGER, saying why)"
