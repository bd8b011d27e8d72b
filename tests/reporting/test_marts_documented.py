"""Every mart an analyst can query is in dbt docs and docs/metrics.md, the score step's two included."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
import yaml

from kizuna.core.settings import PROJECT_DIR, Settings
from kizuna.scoring.run import write_marts

DBT_MODELS = PROJECT_DIR / "dbt_project" / "models"
SCORED_ON = dt.date(2026, 12, 5)


def documented() -> dict[str, dict[str, Any]]:
    """Every model and every source table in schema marts, by name, as the dbt YAML describes it."""
    found: dict[str, dict[str, Any]] = {}
    for path in DBT_MODELS.glob("**/*.yml"):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for model in document.get("models") or []:
            if "/marts/" in path.as_posix():
                found[model["name"]] = model
        for source in document.get("sources") or []:
            if source.get("schema") == "marts":
                for table in source.get("tables") or []:
                    found[table["name"]] = table
    return found


def scoring_tables() -> dict[str, list[str]]:
    """The columns of the two marts as the score step writes them (one scored customer, one open deal)."""
    customers = pd.DataFrame(
        [{"customer_id": "C1", "as_of": SCORED_ON, "churn_risk": 0.7, "expansion_propensity": 0.1,
          "churn_factors_ja": "接触なし", "churn_factors_en": "no touch", "expansion_factors_ja": "",
          "expansion_factors_en": "", "model_version": "gbm-test", "scored_at": dt.datetime(2026, 12, 5, 1)}]
    )  # fmt: skip
    deals = pd.DataFrame(
        [{"deal_id": "D1", "customer_id": "C1", "deal_type": "upsell", "stage": "proposal", "amount": 120000.0,
          "created_at": dt.datetime(2026, 11, 1), "win_probability": 0.4, "expected_close_month": dt.date(2027, 1, 1),
          "expected_amount": 48000.0, "last_activity_on": dt.date(2026, 11, 20), "days_since_last_activity": 15,
          "activity_band": "orange", "next_action_ja": "電話", "next_action_en": "call", "risk_ja": None, "risk_en": None,
          "model_version": "gbm-test",
          "as_of": SCORED_ON, "scored_at": dt.datetime(2026, 12, 5, 1)}]
    )  # fmt: skip
    with duckdb.connect() as con:
        write_marts(con, customers, deals)
        return {
            table: [c[0] for c in con.execute(f"DESCRIBE marts.{table}").fetchall()]
            for table in ("customer_scores", "deal_forecasts")
        }


def test_score_marts_are_in_dbt_docs_column_by_column() -> None:
    docs = documented()
    for table, columns in scoring_tables().items():
        assert table in docs, f"marts.{table} is not described in dbt_project/models (dbt docs)"
        described = {c["name"]: c.get("description", "").strip() for c in docs[table].get("columns") or []}
        assert list(described) == columns, table
        assert all(described.values()), f"{table}: columns without a description"
        assert docs[table]["description"].startswith("One row per"), table  # the grain first (STYLE.md)


def test_metrics_page_lists_every_mart() -> None:
    page = (PROJECT_DIR / "docs" / "metrics.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `marts\.(\w+)` \|", page, re.M))
    assert set(documented()) <= listed, set(documented()) - listed


def test_docs_site_lists_the_score_marts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dbt's own parse of the project holds what dbt docs shows: the score step's marts as sources in marts."""
    from dbt.cli.main import dbtRunner

    from kizuna.transform.dbt_runner import dbt_args, dbt_env

    settings = Settings(warehouse=tmp_path / "w.duckdb", var_dir=tmp_path / "var")
    for key, value in dbt_env(settings, SCORED_ON).items():
        monkeypatch.setenv(key, value)
    result = dbtRunner().invoke(dbt_args(settings, "parse"))
    assert result.success, result.exception
    manifest: Any = result.result
    for table in ("customer_scores", "deal_forecasts"):
        node = manifest.sources[f"source.kizuna.scoring.{table}"]
        assert node.schema == "marts" and node.description.startswith("One row per")
        assert set(node.columns) == set(scoring_tables()[table])
