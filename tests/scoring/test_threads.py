"""Scoring's threads: as many as the process's cores unless set, the same numbers whatever the count, and OpenMP
threads that sleep while they wait (spinning ones crawled on a busy machine)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd

from kizuna.core.warehouse import connect
from kizuna.scoring.run import predict_threads, score_warehouse
from tests.conftest import demo_settings
from tests.scoring.conftest import AS_OF, SCORED_AT, Demo
from tests.scripts import python_script

MARTS = (
    "SELECT * FROM marts.customer_scores ORDER BY customer_id",
    "SELECT * FROM marts.deal_forecasts ORDER BY deal_id",
)


def _marts(path: Path) -> list[pd.DataFrame]:
    with connect(path, read_only=True) as con:
        return [con.execute(sql).df() for sql in MARTS]


def test_scoring_uses_the_process_cores_unless_set(demo: Demo) -> None:
    assert predict_threads(demo.settings) == len(os.sched_getaffinity(0))
    assert predict_threads(demo.settings.model_copy(update={"scores_predict_threads": 3})) == 3


def test_gradient_boosting_scores_are_the_same_with_two_threads_as_with_one(demo: Demo, tmp_path: Path) -> None:
    """gbm forced (its predictions are OpenMP loops over the rows): trained and scored with one thread, then the
    stored model scores again with two; both marts are identical, factor lines and deal forecasts included."""
    settings = demo_settings(tmp_path).model_copy(update={"scores_model": "gbm", "scores_predict_threads": 1})
    shutil.copy(demo.settings.warehouse, settings.warehouse)
    one = score_warehouse(settings, AS_OF, scored_at=SCORED_AT)
    assert one.trained and one.model_version.startswith("gbm-")
    first = _marts(settings.warehouse)
    two = score_warehouse(settings.model_copy(update={"scores_predict_threads": 2}), AS_OF, scored_at=SCORED_AT)
    assert not two.trained and two.model_version == one.model_version
    for before, after in zip(first, _marts(settings.warehouse), strict=True):
        assert len(before) > 100
        pd.testing.assert_frame_equal(before, after)


def test_openmp_threads_sleep_while_they_wait() -> None:
    """Set before scikit-learn loads its OpenMP runtime (it reads the policy once); a policy set outside stays."""
    command = python_script(
        "import os, sys; import kizuna.scoring.model; assert 'sklearn' in sys.modules; print(os.environ['OMP_WAIT_POLICY'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"
