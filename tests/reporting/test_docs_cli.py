"""`kizuna docs`: dbt's documentation site with its lineage graph, built in a process of its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner


def test_docs_site_is_generated(tmp_path: Path, demo_warehouse_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kizuna.cli import app

    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy2(demo_warehouse_path, warehouse)  # dbt opens the file for writing; others read the original
    monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "var"))
    result = CliRunner().invoke(app, ["docs", "--warehouse", str(warehouse), "--as-of", "2026-11-23"])
    assert result.exit_code == 0, result.output
    docs = tmp_path / "var" / "dbt" / "docs"
    assert str(docs / "index.html") in result.output
    assert (docs / "static_index.html").exists()
    manifest = json.loads((docs / "manifest.json").read_text(encoding="utf-8"))
    # The lineage graph: the KPI mart's parents are the models it reads.
    assert "model.kizuna.int_mrr_movements_classified" in manifest["parent_map"]["model.kizuna.mrr_kpis_monthly"]
    catalog = json.loads((docs / "catalog.json").read_text(encoding="utf-8"))
    assert "model.kizuna.customers" in catalog["nodes"]
