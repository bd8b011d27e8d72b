"""`kizuna sources …`: look at a source directory before the first run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kizuna.cli.common import fail
from kizuna.core.settings import Settings

app = typer.Typer(help="Source files: check an export before loading it.", no_args_is_help=True)


@app.command("check")
def check(
    source_dir: Annotated[Path, typer.Argument(help="Directory of exported files (CSV, or customers.xlsx).")],
    mapping: Annotated[
        str | None,
        typer.Option(help="A shipped mapping (hubspot-export, salesforce-report, kintone-ja) or a mapping file."),
    ] = None,
) -> None:
    """Say what the directory holds and what a run would make of it; writes nothing to the warehouse."""
    from kizuna.connectors.routing import FILES, load_routing
    from kizuna.core.errors import SourceError
    from kizuna.sources.check import check_sources, render_check
    from kizuna.sources.mapping import Mapping, load_mapping, mapping_from_options, resolve_mapping_path

    settings = Settings()
    chosen: Mapping | None
    try:
        if not source_dir.is_dir():
            raise SourceError(str(source_dir), None, None, "source directory does not exist")
        if mapping is not None:
            chosen = load_mapping(resolve_mapping_path(mapping, settings.mappings_dir, Path.cwd()))
        else:
            options = load_routing(settings).options.get(FILES, {})
            chosen = mapping_from_options(options, settings.mappings_dir, settings.sources_config)
        result = check_sources(settings, source_dir, chosen)
    except SourceError as exc:
        raise fail(exc) from exc
    for line in render_check(result):
        typer.echo(line)  # plain lines: the report is read in a terminal and piped to files alike
    if not result.ready:
        raise typer.Exit(code=1)
