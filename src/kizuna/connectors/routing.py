"""Which source feeds which raw table: a YAML file (settings.sources_config) plus KIZUNA_TABLE_SOURCES.

    # sources.yaml
    tables:
      customers: hubspot
      contacts: hubspot
      subscriptions: stripe
      invoices: stripe
      usage: files          # the default for every table not named
    hubspot:                # non-secret options of each source (docs/sources.md)
      owner_fallback: inside-sales@example.co.jp

Secrets never live in this file: tokens come from environment variables or Prefect Secret blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kizuna.core.contract import TABLES_BY_NAME
from kizuna.core.errors import SourceError
from kizuna.core.settings import Settings

FILES = "files"
SOURCES = (FILES, "hubspot", "stripe", "postgres")
_SECRET_WORDS = ("token", "key", "secret", "password", "dsn")
_NOT_SECRETS = ("_metadata_key",)  # names of metadata fields (stripe.customer_id_metadata_key), not keys


@dataclass(frozen=True)
class Routing:
    """Source per raw table, and each source's options from the sources file."""

    by_table: dict[str, str]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    origin: str = "defaults"

    def source_of(self, table: str) -> str:
        return self.by_table.get(table, FILES)

    @property
    def uses_files(self) -> bool:
        return any(self.source_of(t) == FILES for t in TABLES_BY_NAME)

    def tables_from(self, source: str) -> list[str]:
        return [t for t in TABLES_BY_NAME if self.source_of(t) == source]


def _check_table_source(where: str, table: str, source: object) -> str:
    if table not in TABLES_BY_NAME:
        raise SourceError(where, None, table, f"is not a raw table; expected one of {', '.join(TABLES_BY_NAME)}")
    if not isinstance(source, str) or source not in SOURCES:
        raise SourceError(where, None, table, f"source {source!r} is unknown; expected one of {', '.join(SOURCES)}")
    return source


def _refuse_secrets(where: str, source: str, options: dict[str, Any]) -> None:
    for name in options:
        lowered = str(name).lower()
        if any(word in lowered for word in _SECRET_WORDS) and not lowered.endswith(_NOT_SECRETS):
            raise SourceError(
                where,
                None,
                f"{source}.{name}",
                "secrets do not belong in the sources file; set them as environment variables or Prefect "
                "Secret blocks (docs/sources.md)",
            )


def load_routing(settings: Settings) -> Routing:
    """Read the sources file (if any) and apply KIZUNA_TABLE_SOURCES on top. Errors name file and key."""
    by_table: dict[str, str] = {}
    options: dict[str, dict[str, Any]] = {}
    origin = "defaults"
    path: Path | None = settings.sources_config
    if path is not None:
        where = str(path)
        if not path.is_file():
            raise SourceError(where, None, None, "sources file does not exist (setting sources_config)")
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise SourceError(where, None, None, f"is not valid YAML: {exc}") from exc
        if not isinstance(doc, dict):
            raise SourceError(where, None, None, "must be a mapping with a 'tables' key")
        unknown = set(doc) - {"tables", *SOURCES}
        if unknown:
            raise SourceError(where, None, sorted(unknown)[0], "unknown key; expected 'tables' or a source name")
        tables = doc.get("tables") or {}
        if not isinstance(tables, dict):
            raise SourceError(where, None, "tables", "must map raw table names to sources")
        for table, source in tables.items():
            by_table[str(table)] = _check_table_source(where, str(table), source)
        for source in SOURCES:
            opts = doc.get(source) or {}
            if not isinstance(opts, dict):
                raise SourceError(where, None, source, "options must be a mapping")
            _refuse_secrets(where, source, opts)
            options[source] = opts
        origin = where
    if settings.table_sources:
        where = "KIZUNA_TABLE_SOURCES"
        for part in settings.table_sources.split(","):
            if not part.strip():
                continue
            table, sep, source = part.partition("=")
            if not sep:
                raise SourceError(where, None, part.strip(), "expected table=source, e.g. customers=hubspot")
            by_table[table.strip()] = _check_table_source(where, table.strip(), source.strip())
        origin = f"{origin} + {where}" if origin != "defaults" else where
    return Routing(by_table=by_table, options=options, origin=origin)
