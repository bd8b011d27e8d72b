"""`kizuna demo-data`: a realistic company's source files, to try kizuna without your own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from kizuna.cli.common import AsOf, business_day
from kizuna.core.settings import Settings

app = typer.Typer()
console = Console()
err = Console(stderr=True)


@app.command("demo-data")
def demo_data(
    customers: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 42,
    out: Annotated[
        Path | None, typer.Option(help="Output directory [default: KIZUNA_VAR_DIR/demo-data, i.e. var/demo-data].")
    ] = None,
    as_of: AsOf = None,
    encoding: Annotated[str, typer.Option(help="utf-8, or cp932 as Japanese Excel writes CSV.")] = "utf-8",
    excel: Annotated[bool, typer.Option(help="Write customers.xlsx instead of customers.csv.")] = False,
    next_day_of: Annotated[
        Path | None,
        typer.Option(
            help="Write the day after this demo export instead (its files and format; --customers, --encoding and"
            " --excel are ignored). --as-of defaults to the day after its latest event.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    change_rate: Annotated[
        float, typer.Option(min=0.0001, max=0.4, help="With --next-day-of: the share of each file's rows changed.")
    ] = 0.005,
) -> None:
    """Write a realistic Japanese B2B SaaS in the source contract (docs/sources.md), or the day after one."""
    settings = Settings()
    # Not KIZUNA_SOURCE_DIR: that may be a real export, which demo data must never overwrite.
    out = out or settings.var_dir / "demo-data"
    if next_day_of is not None:
        _next_day(next_day_of, out, seed, as_of, change_rate)
        return
    from kizuna.demo.generate import generate_demo_data

    day = business_day(as_of, settings)
    with err.status(f"generating {customers:,} customers"):
        rows = generate_demo_data(out, customers, seed, day, encoding=encoding, customers_as_excel=excel)
    for name, count in rows.items():
        console.print(f"{name}: {count:,} rows")
    console.print(f"wrote {out} (as of {day.isoformat()}, seed {seed})")


def _next_day(prev_dir: Path, out: Path, seed: int, as_of: str | None, change_rate: float) -> None:
    from kizuna.demo.next_day import NextDayError, next_day_demo_data

    day = business_day(as_of, Settings()) if as_of else None
    try:
        with err.status(f"changing {prev_dir} overnight"):
            new_day, rows = next_day_demo_data(prev_dir, out, seed, as_of=day, change_rate=change_rate)
    except NextDayError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    for name, count in rows.items():
        console.print(f"{name}: {count:,} rows")
    console.print(f"wrote {out} (the day after {prev_dir}: as of {new_day.isoformat()}, seed {seed})")
