"""The weekly train-scores Prefect flow: trains on the warehouse, makes the model current, reports it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flows.train_scores import train_scores
from kizuna.scoring import store
from tests.conftest import demo_settings
from tests.scoring.conftest import AS_OF, Demo


def test_train_scores_flow_stores_a_current_model_and_its_report_artifact(
    prefect_harness: None, demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client

    settings = demo_settings(tmp_path)
    shutil.copy(demo.settings.warehouse, settings.warehouse)
    monkeypatch.setenv("KIZUNA_VAR_DIR", str(settings.var_dir))

    directory = Path(train_scores(warehouse=str(settings.warehouse)))

    version = store.current_version(settings.models_dir)
    assert directory == settings.models_dir / str(version)
    card = json.loads((directory / store.CARD_FILE).read_text(encoding="utf-8"))
    assert card["trained_as_of"] == AS_OF.isoformat()
    # the same warehouse, seed and day as the daily run's own training: the same model
    assert version == demo.result.model_version
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()
        reports = [a for a in artifact if a.key == "scores-model"]
    assert reports and f"# Scores model {version}" in str(reports[0].data)
