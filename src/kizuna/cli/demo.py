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
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("var/demo-data"),
    as_of: AsOf = None,
    encoding: Annotated[str, typer.Option(help="utf-8, or cp932 as Japanese Excel writes CSV.")] = "utf-8",
    excel: Annotated[bool, typer.Option(help="Write customers.xlsx instead of customers.csv.")] = False,
) -> None:
    """Write a realistic Japanese B2B SaaS in the source contract (docs/sources.md)."""
    from kizuna.demo.generate import generate_demo_data

    day = business_day(as_of, Settings())
    with err.status(f"generating {customers:,} customers"):
        rows = generate_demo_data(out, customers, seed, day, encoding=encoding, customers_as_excel=excel)
    for name, count in rows.items():
        console.print(f"{name}: {count:,} rows")
    console.print(f"wrote {out} (as of {day.isoformat()}, seed {seed})")
