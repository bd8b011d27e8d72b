"""One rule for the mode of every file kizuna writes for people: 0666 less the umask (kizuna.reporting.files)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from kizuna.core.settings import Settings
from kizuna.reporting.export import export_mart
from kizuna.reporting.files import current_umask, file_mode
from kizuna.reporting.report import build_report
from tests.reporting.test_report_months import AS_OF, write_warehouse


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    mask = int(request.param)
    before = os.umask(mask)
    try:
        yield mask
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask-022", "umask-077"], indirect=True)
def test_reports_charts_and_exports_share_one_mode(tmp_path: Path, umask: int) -> None:
    assert current_umask() == umask and file_mode() == 0o666 & ~umask
    warehouse = tmp_path / "warehouse.duckdb"
    write_warehouse(warehouse)
    result = build_report(Settings(warehouse=warehouse, var_dir=tmp_path / "var"), AS_OF, "en")
    written = [result.path, *result.png_paths[:2]]
    for fmt in ("csv", "xlsx", "parquet"):
        written.append(export_mart(warehouse, "mrr_kpis_monthly", fmt, tmp_path / "exports" / f"k.{fmt}")[0])
    assert {p.name: oct(mode(p)) for p in written} == {p.name: oct(0o666 & ~umask) for p in written}
    assert not list((tmp_path / "exports").glob(".*.tmp"))  # no temporary file left beside them
