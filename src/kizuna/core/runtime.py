"""Process set-up for the CLI and tests: quiet third-party telemetry before Prefect, dbt or GX load."""

from __future__ import annotations

import os

_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    # A fresh PREFECT_HOME migrates its database on the first start; 20 s (the default) is not always enough.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
}


def quiet_third_parties() -> None:
    """Set telemetry and start-up defaults for libraries we embed; the user's own values win."""
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
