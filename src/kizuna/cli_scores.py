"""`kizuna score`: churn risk, expansion propensity and deal forecasts into marts (docs/scores.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kizuna.settings import Settings

app = typer.Typer(help="Predictive scores.")
console = Console()
err = Console(stderr=True)

Warehouse = Annotated[Path | None, typer.Option(help="DuckDB file (default: KIZUNA_WAREHOUSE).")]
AsOf = Annotated[str | None, typer.Option("--as-of", help="Business date YYYY-MM-DD (default: today, Tokyo).")]


@app.command()
def score(warehouse: Warehouse = None, as_of: AsOf = None) -> None:
    """Train on the warehouse's history and write marts.customer_scores and marts.deal_forecasts.

    Needs a warehouse built as of the same date (`kizuna run --as-of`), whose features dbt computed.
    """
    from kizuna.dates import parse_as_of
    from kizuna.scoring.run import score_warehouse

    settings = Settings(warehouse=warehouse) if warehouse is not None else Settings()
    try:
        day = parse_as_of(as_of, settings.timezone)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        result = score_warehouse(settings, day)
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(code=1) from exc
    table = Table(title=f"scores {result.model_version} as of {result.as_of}")
    for column in ("score", "ROC AUC", "PR AUC", "Brier", "base-rate Brier", "top-decile lift", "baseline AUC"):
        table.add_column(column, justify="right" if column != "score" else "left")
    for name, e in result.evaluations.items():
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
    deals = result.deal_evaluation
    deal_auc = f", win model validation ROC AUC {deals.roc_auc:.3f}" if deals else ""
    console.print(
        f"{result.customers_scored:,} customers scored, {result.deals_forecast:,} open deals forecast{deal_auc}; "
        f"evaluation in {result.report_path}"
    )
