"""Which source feeds which raw table: the sources file, its overrides and its mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from kizuna.connectors.routing import load_routing
from kizuna.core.errors import SourceError
from kizuna.core.settings import Settings
from kizuna.sources.ingest import stage_sources


def _with_config(settings: Settings, tmp_path: Path, text: str, **overrides: object) -> Settings:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return settings.model_copy(update={"sources_config": path, **overrides})


def test_every_table_comes_from_files_without_a_sources_file(settings: Settings) -> None:
    routing = load_routing(settings)
    assert routing.source_of("customers") == "files"
    assert routing.uses_files


def test_sources_file_routes_tables_and_keeps_options(settings: Settings, tmp_path: Path) -> None:
    text = "tables:\n  customers: hubspot\n  subscriptions: stripe\nhubspot:\n  customer_id_property: crm_id\n"
    routing = load_routing(_with_config(settings, tmp_path, text))
    assert routing.source_of("customers") == "hubspot"
    assert routing.source_of("subscriptions") == "stripe"
    assert routing.source_of("usage") == "files"
    assert routing.options["hubspot"] == {"customer_id_property": "crm_id"}
    assert routing.tables_from("stripe") == ["subscriptions"]


def test_environment_overrides_the_file(settings: Settings, tmp_path: Path) -> None:
    s = _with_config(
        settings, tmp_path, "tables:\n  customers: hubspot\n", table_sources="customers=postgres, usage=postgres"
    )
    routing = load_routing(s)
    assert routing.source_of("customers") == "postgres"
    assert routing.source_of("usage") == "postgres"


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ("tables:\n  customer: hubspot\n", None, "customer"),  # not a raw table
        ("tables:\n  customers: salesforce\n", None, "customers"),  # unknown source
        ("hubspot:\n  token: pat-na1-123\n", None, "hubspot.token"),  # a secret in the file
        ("tabels:\n  customers: hubspot\n", None, "tabels"),  # misspelt key
        ("tables: [customers]\n", None, "tables"),
        ("", "customers:hubspot", "customers:hubspot"),  # malformed override
    ],
)
def test_mistakes_name_the_file_and_the_key(
    settings: Settings, tmp_path: Path, text: str, env: str | None, named: str
) -> None:
    s = _with_config(settings, tmp_path, text, table_sources=env)
    with pytest.raises(SourceError) as err:
        load_routing(s)
    assert err.value.finding.column == named
    assert err.value.finding.file in (str(tmp_path / "sources.yaml"), "KIZUNA_TABLE_SOURCES")
    assert "pat-na1-123" not in str(err.value)


def test_a_bad_sources_file_stops_ingest_before_the_warehouse_changes(settings: Settings, tmp_path: Path) -> None:
    s = _with_config(settings, tmp_path, "tables:\n  customers: salesforce\n")
    with pytest.raises(SourceError):
        stage_sources(s)
    assert not s.warehouse.exists()
