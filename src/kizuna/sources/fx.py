"""Which currencies a load can convert to the reporting currency: the source's fx_rates file and dbt's seed."""

from __future__ import annotations

from pathlib import Path

import yaml

from kizuna.core.connection import Connection
from kizuna.core.warehouse import table_exists

# Written beside the staged tables for the gate (expectations/raw_subscriptions_fx_rates.json); never published.
FX_CURRENCIES_TABLE = "_fx_currencies"
DEFAULT_REPORTING_CURRENCY = "JPY"


def reporting_currency(dbt_project_dir: Path) -> str:
    """The dbt var every mart amount is in (dbt_project.yml), upper-cased as the models use it."""
    try:
        project = yaml.safe_load((dbt_project_dir / "dbt_project.yml").read_text(encoding="utf-8"))
        value = (project.get("vars") or {}).get("reporting_currency")
    except (OSError, yaml.YAMLError, AttributeError):
        value = None
    return str(value or DEFAULT_REPORTING_CURRENCY).strip().upper()


def record_fx_currencies(con: Connection, schema: str, dbt_project_dir: Path) -> None:
    """Stage the codes that have a rate into the reporting currency, as int_fx_rates_spined_to_months finds
    them: the reporting currency itself, the staged fx_rates file's currencies, the fx_rates seed's."""
    reporting = reporting_currency(dbt_project_dir)
    parts = ["SELECT ?::VARCHAR AS currency"]
    params: list[object] = [reporting]
    seed = dbt_project_dir / "seeds" / "fx_rates.csv"
    if seed.exists():
        parts.append(
            "SELECT upper(trim(currency)) FROM read_csv(?, header = true, all_varchar = true) "
            "WHERE upper(trim(reporting_currency)) = ? AND try_cast(rate AS DOUBLE) > 0"
        )
        params += [str(seed), reporting]
    if table_exists(con, schema, "fx_rates"):
        parts.append(
            f"SELECT upper(trim(currency)) FROM {schema}.fx_rates "
            "WHERE upper(trim(coalesce(reporting_currency, ?))) = ? AND rate > 0"
        )
        params += [reporting, reporting]
    con.execute(
        f"CREATE OR REPLACE TABLE {schema}.{FX_CURRENCIES_TABLE} AS SELECT DISTINCT currency FROM ({' UNION ALL '.join(parts)})",
        params,
    )
