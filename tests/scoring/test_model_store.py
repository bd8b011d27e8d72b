"""Stored models: the daily run scores with the weekly model, retrains only when it must, and each model has its
card (training window, metrics, features), evaluation report and calibration chart."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType

import numpy._core._internal as numpy_internal
import pandas as pd
import pytest

from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.scoring import store
from kizuna.scoring.run import score_warehouse, train_and_store
from tests.conftest import demo_settings
from tests.scoring.conftest import AS_OF, SCORED_AT, Demo

SCORES = "SELECT customer_id, churn_risk, expansion_propensity, model_version FROM marts.customer_scores ORDER BY 1"


def _copy(demo: Demo, root: Path) -> Settings:
    """The demo's warehouse and models in a folder of the test's own, to change freely."""
    settings = demo_settings(root)
    root.mkdir(exist_ok=True)
    shutil.copy(demo.settings.warehouse, settings.warehouse)
    shutil.copytree(demo.settings.models_dir, settings.models_dir)
    return settings


def _scores(settings: Settings) -> pd.DataFrame:
    with connect(settings.warehouse, read_only=True) as con:
        return con.execute(SCORES).df()


def test_first_scoring_trains_and_stores_a_model_with_its_card_report_and_chart(demo: Demo) -> None:
    models = demo.settings.models_dir
    assert demo.result.trained and "no trained model" in demo.result.training_reason
    assert store.current_version(models) == demo.result.model_version
    directory = models / demo.result.model_version
    card = json.loads((directory / store.CARD_FILE).read_text(encoding="utf-8"))
    assert card["trained_as_of"] == AS_OF.isoformat()
    window = card["training_window"]
    assert window["first_month"] < window["last_month"] <= "2026-08-01"  # labels complete before the as-of month
    assert card["features"] == demo.result.features and "usage_vs_3_month_average" in card["features"]
    for name in ("churn", "expansion"):
        metrics = card["evaluations"][name]
        assert 0.5 < metrics["roc_auc"] <= 1 and metrics["brier"] < metrics["brier_of_base_rate"]
        assert metrics["top_decile_lift"] > 1 and metrics["baseline_roc_auc"] > 0
    assert card["deals"]["roc_auc"] > 0.5

    report = (directory / "report.md").read_text(encoding="utf-8")
    churn = demo.result.evaluations["churn"]
    assert f"| {churn.roc_auc:.3f} |" in report and "calibration.svg" in report and "usage_vs_3_month_average" in report
    chart = (directory / "calibration.svg").read_text(encoding="utf-8")
    bands = [b for e in demo.result.evaluations.values() for b in e.reliability_by_band if b["rows"] > 0]
    assert chart.startswith("<svg") and chart.count("<circle") == len(bands) and chart.count("<polyline") == 2


def test_the_daily_run_scores_with_the_stored_model_without_training(demo: Demo, tmp_path: Path) -> None:
    settings = _copy(demo, tmp_path / "w")
    before = _scores(settings)
    result = score_warehouse(settings, AS_OF, scored_at=SCORED_AT + dt.timedelta(days=3))
    assert not result.trained and result.model_version == demo.result.model_version
    assert result.report_path == settings.models_dir / demo.result.model_version / "report.md"
    pd.testing.assert_frame_equal(before, _scores(settings))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda b: replace(b, as_of=AS_OF + dt.timedelta(days=1)), "would use outcomes that day could not know"),
        (lambda b: replace(b, sklearn_version="0.0.1"), "saved by scikit-learn 0.0.1"),
        (lambda b: replace(b, fixed_features=(*b.fixed_features, "gone")), "another feature list"),
        (lambda b: replace(b, kind="logistic"), "scores_model=logistic and seed 7; settings ask for auto"),
        (lambda b: replace(b, trained_at=SCORED_AT - dt.timedelta(days=15)), "15 days old"),
        (lambda b: replace(b, as_of=AS_OF - dt.timedelta(days=20)), "more than 14 days before"),
    ],
    ids=["trained-after-the-day", "other-sklearn", "other-features", "other-kind", "too-old", "trained-long-before"],
)
def test_a_model_that_may_not_score_the_day_is_refused_with_the_reason(demo: Demo, change, expected: str) -> None:
    bundle = store.load(demo.settings.models_dir, demo.result.model_version).bundle
    assert store.why_not_usable(bundle, AS_OF, "auto", 7, 14, SCORED_AT) == ""
    assert expected in store.why_not_usable(change(bundle), AS_OF, "auto", 7, 14, SCORED_AT)


def test_a_damaged_model_file_is_not_loaded_and_a_new_model_is_trained(demo: Demo, tmp_path: Path) -> None:
    settings = _copy(demo, tmp_path / "w")
    model_file = settings.models_dir / demo.result.model_version / store.MODEL_FILE
    model_file.write_bytes(model_file.read_bytes()[:-100])  # a half-written copy
    with pytest.raises(store.ModelFileError, match="digest differs"):
        store.load(settings.models_dir, demo.result.model_version)
    result = score_warehouse(settings, AS_OF, scored_at=SCORED_AT)
    assert result.trained and "digest differs" in result.training_reason
    assert store.load(settings.models_dir, result.model_version).bundle.version == demo.result.model_version
    pd.testing.assert_frame_equal(_scores(demo.settings), _scores(settings))


def test_a_backfill_trains_for_its_day_without_replacing_the_current_model(demo: Demo, tmp_path: Path) -> None:
    """A model trained as of the day after may not score this day; the model trained for it is kept apart."""
    settings = _copy(demo, tmp_path / "w")
    later = store.load(settings.models_dir, demo.result.model_version).bundle
    later = replace(later, version="gbm-later", as_of=AS_OF + dt.timedelta(days=7))
    store.save(settings.models_dir, later)
    result = score_warehouse(settings, AS_OF, scored_at=SCORED_AT)
    assert result.trained and "could not know" in result.training_reason
    assert store.current_version(settings.models_dir) == "gbm-later"
    assert (settings.models_dir / result.model_version / store.CARD_FILE).exists()


def test_training_refuses_features_of_another_day(demo: Demo, tmp_path: Path) -> None:
    settings = _copy(demo, tmp_path / "w")
    with pytest.raises(ValueError, match=f"features are as of {AS_OF}, not 2026-11-30"):
        train_and_store(settings, dt.date(2026, 11, 30))


def test_scoring_refuses_features_of_another_day_before_training_or_writing(demo: Demo, tmp_path: Path) -> None:
    """Asked to retrain for a day the features were not built for, scoring stops at once: no model trained or
    stored, the marts as they were."""
    settings = _copy(demo, tmp_path / "w")
    before, versions = _scores(settings), sorted(p.name for p in settings.models_dir.iterdir())
    with pytest.raises(ValueError, match=f"features are as of {AS_OF}, not 2026-11-30"):
        score_warehouse(settings, dt.date(2026, 11, 30), scored_at=SCORED_AT, retrain=True)
    assert sorted(p.name for p in settings.models_dir.iterdir()) == versions
    pd.testing.assert_frame_equal(before, _scores(settings))


class Interrupted(BaseException):
    """What a signal handler raises: KeyboardInterrupt (Ctrl-C), Prefect's TerminationSignal (a cancelled run's
    SIGTERM), pytest-timeout's Failed. None of them is an Exception."""


@contextmanager
def interrupt_while_numpy_parses_a_buffer_format() -> Iterator[list[str]]:
    """A real signal whose handler raises only once it runs inside numpy's Python PEP 3118 format parser, which
    gradient boosting calls once per tree: the unlucky moment a loaded machine hit by chance, made certain.
    SIGVTALRM counts this process's CPU time and leaves pytest-timeout's SIGALRM alone."""
    hits: list[str] = []

    def in_parser(frame: FrameType | None) -> bool:
        while frame is not None:
            code = frame.f_code
            if code.co_filename == numpy_internal.__file__ and code.co_name == "_dtype_from_pep3118":
                return True
            frame = frame.f_back
        return False

    def handler(signum: int, frame: FrameType | None) -> None:
        if not hits and in_parser(frame):
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)
            hits.append("numpy._core._internal._dtype_from_pep3118")
            raise Interrupted("stopped while numpy parsed a buffer format")

    previous = signal.signal(signal.SIGVTALRM, handler)
    signal.setitimer(signal.ITIMER_VIRTUAL, 0.001, 0.001)
    try:
        yield hits
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


@pytest.mark.parametrize(
    "train",
    [
        lambda s: score_warehouse(s, AS_OF, scored_at=SCORED_AT + dt.timedelta(days=1), retrain=True),
        lambda s: train_and_store(s, AS_OF),
    ],
    ids=["daily-score-step", "weekly-training"],
)
def test_an_interrupt_during_training_surfaces_as_itself_and_changes_nothing(
    demo: Demo, tmp_path: Path, train: Callable[[Settings], object]
) -> None:
    """numpy reports any exception raised inside its buffer-format parser as "ValueError: '…' is not a valid PEP
    3118 buffer format string". A timeout or cancellation landing there must not pass for scikit-learn refusing
    the data (a Failed run and a data alert instead of a Cancelled or timed-out one)."""
    settings = _copy(demo, tmp_path / "w")
    before, versions = _scores(settings), sorted(p.name for p in settings.models_dir.iterdir())
    with interrupt_while_numpy_parses_a_buffer_format() as hits, pytest.raises(Interrupted, match="stopped while"):
        train(settings)
    assert hits, "the signal never landed in numpy's parser: training no longer goes through it"
    assert sorted(p.name for p in settings.models_dir.iterdir()) == versions
    assert store.current_version(settings.models_dir) == demo.result.model_version
    pd.testing.assert_frame_equal(before, _scores(settings))
