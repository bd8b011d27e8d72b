"""Source name -> connector, imported only when a table is routed to it (the clients are heavy)."""

from __future__ import annotations

from typing import Any

from kizuna.connectors.base import Connector
from kizuna.core.settings import Settings


def make_connector(source: str, settings: Settings, options: dict[str, Any]) -> Connector:
    if source == "hubspot":
        from kizuna.connectors.hubspot import HubSpotConnector

        return HubSpotConnector(settings, options)
    if source == "stripe":
        from kizuna.connectors.stripe import StripeConnector

        return StripeConnector(settings, options)
    if source == "postgres":
        from kizuna.connectors.postgres import PostgresConnector

        return PostgresConnector(settings, options)
    raise ValueError(f"no connector named {source!r}")
