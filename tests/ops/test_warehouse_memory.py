"""DuckDB's memory_limit: one variable bounds kizuna's own connections and dbt's, and a typo names it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kizuna.core.settings import PROJECT_DIR
from kizuna.core.warehouse import DEFAULT_MEMORY_LIMIT, MEMORY_LIMIT_ENV, connect


def limit_bytes(warehouse: Path) -> int:
    with connect(warehouse) as con:
        con.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        row = con.execute("SELECT value FROM duckdb_settings() WHERE name = 'memory_limit'").fetchone()
    assert row is not None
    number, unit = re.fullmatch(r"([\d.]+) (\w+)", row[0]).groups()  # type: ignore[union-attr]
    return int(float(number) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit])


def test_connections_take_the_limit_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    assert limit_bytes(tmp_path / "w.duckdb") == pytest.approx(
        2 * 10**9, rel=0.05
    )  # 2GB (shown rounded), not 80% of RAM
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "500MB")
    assert limit_bytes(tmp_path / "w.duckdb") == pytest.approx(500 * 10**6, rel=0.05)


def test_a_size_that_is_not_one_names_the_variable_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "2 gigs")
    with pytest.raises(ValueError, match=f"{MEMORY_LIMIT_ENV}='2 gigs' is not a size"), connect(tmp_path / "w.duckdb"):
        pass
    assert not (tmp_path / "w.duckdb").exists()


def test_dbt_reads_the_same_variable_with_the_same_default() -> None:
    profile = (PROJECT_DIR / "dbt_project" / "profiles.yml").read_text(encoding="utf-8")
    assert f"env_var('{MEMORY_LIMIT_ENV}', '{DEFAULT_MEMORY_LIMIT}')" in profile
