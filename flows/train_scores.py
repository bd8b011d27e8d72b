"""The train-scores flow: train churn, expansion and deal-win models on the warehouse, store them (weekly).

The daily run scores with the model this flow stores (var/models/current.json); it trains one itself only when
none may score its day (docs/scores.md, "Training and model files").
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.support import AsOfParameter, alert_on_failure, flow_settings, run_writer_lock, warehouse_task
from kizuna import pipeline
from kizuna.core.settings import Settings
from kizuna.scoring.report import REPORT_FILE


@warehouse_task("train-scores")
def train(settings: Settings, as_of: date | None) -> str:
    """Train and store; returns the model's directory."""
    return str(pipeline.train_scores(settings, as_of).directory)


@flow(name="train-scores", log_prints=False, on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def train_scores(warehouse: str | None = None, as_of: AsOfParameter = None) -> str:
    """Train on the features the last daily run built (as_of: check they are as of this day) and make the model
    current; the evaluation report (metrics, baseline, calibration chart) is the run's artifact."""
    settings = flow_settings(warehouse=warehouse)
    with run_writer_lock(settings):
        directory = train(settings, as_of)
    report = Path(directory) / REPORT_FILE
    create_markdown_artifact(report.read_text(encoding="utf-8"), key="scores-model", description=str(directory))
    get_run_logger().info("scores model stored in %s", directory)
    return directory
