"""`kizuna score`: churn risk, expansion propensity and deal forecasts into marts (docs/scores.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from kizuna.cli.common import AsOf, Warehouse, business_day, fail, waiting_for_warehouse
from kizuna.core.settings import settings_with

if TYPE_CHECKING:
    from kizuna.scoring.model import Evaluation

app = typer.Typer(help="Predictive scores.")
console = Console()

Retrain = Annotated[bool, typer.Option("--retrain", help="Train a new model first, even if a stored one is usable.")]


@app.command()
def score(warehouse: Warehouse = None, as_of: AsOf = None, retrain: Retrain = False) -> None:
    """Write marts.customer_scores and marts.deal_forecasts with the stored model (var/models/current.json).

    Needs a warehouse built as of the same date (`kizuna run --as-of`), whose features dbt computed. Without a
    stored model that may score that day (or with --retrain), trains one on the warehouse's history first.
    """
    from kizuna.scoring.run import score_warehouse

    settings = settings_with(warehouse=warehouse)
    day = business_day(as_of, settings)
    try:
        with waiting_for_warehouse(settings):
            result = score_warehouse(settings, day, retrain=retrain)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(exc) from exc
    if result.trained:
        console.print(f"trained model {result.model_version}: {result.training_reason}")
    else:
        console.print(f"scored with the stored model {result.model_version} (trained as of {result.model_as_of})")
    _print_evaluation(result.model_version, result.as_of, result.evaluations)
    deals = result.deal_evaluation
    deal_auc = f", win model validation ROC AUC {deals.roc_auc:.3f}" if deals else ""
    console.print(
        f"{result.customers_scored:,} customers scored, {result.deals_forecast:,} open deals forecast{deal_auc}; "
        f"model report in {result.report_path}"
    )


@app.command("train-scores")
def train_scores(warehouse: Warehouse = None, as_of: AsOf = None) -> None:
    """Train churn, expansion and deal-win models on the warehouse and make them current (what the weekly
    train-scores flow does); the evaluation report and calibration chart go to var/models/<version>/."""
    from kizuna.scoring.run import train_and_store

    settings = settings_with(warehouse=warehouse)
    day = business_day(as_of, settings) if as_of else None  # unset: the day dbt last built the features
    try:
        with waiting_for_warehouse(settings):
            stored = train_and_store(settings, day)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(exc) from exc
    _print_evaluation(stored.bundle.version, stored.bundle.as_of, stored.bundle.evaluations)
    console.print(f"model stored in {stored.directory}")


def _print_evaluation(version: str, as_of: object, evaluations: dict[str, Evaluation]) -> None:
    table = Table(title=f"scores {version} as of {as_of}")
    for column in ("score", "ROC AUC", "PR AUC", "Brier", "base-rate Brier", "top-decile lift", "baseline AUC"):
        table.add_column(column, justify="right" if column != "score" else "left")
    for name, e in evaluations.items():
        table.add_row(
            name,
            f"{e.roc_auc:.3f}",
            f"{e.pr_auc:.3f}",
            f"{e.brier:.4f}",
            f"{e.brier_of_base_rate:.4f}",
            f"{e.top_decile_lift:.1f}x",
            f"{e.baseline_roc_auc:.3f} ({e.baseline_name})",
        )
    console.print(table)
