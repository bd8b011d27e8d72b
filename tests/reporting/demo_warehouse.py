"""One demo warehouse per test session, shared by the report and studio tests (a dbt build costs ≈ 15 s)."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from kizuna.campaigns.select import select_recipients
from kizuna.campaigns.spec import load_campaign
from kizuna.core.warehouse import connect
from kizuna.tracking.loader import ensure_tracking_tables
from tests.conftest import demo_settings, publish_demo_raw

AS_OF = dt.date(2026, 11, 23)
CUSTOMERS = 400
# The marts the report reads that the revenue and customer areas build; engagement marts come with tracking.
SELECT = "+path:models/marts/revenue +path:models/marts/customers"
HOLDOUT_PERCENT = 20.0
# Selected a quarter earlier, so treatment and holdout have had time to expand or churn in the demo's history.
SELECTED_ON = dt.date(2026, 8, 17)

_built: dict[str, Path] = {}


def demo_warehouse() -> Path:
    """Demo sources → raw (published without the gate: its own tests cover it) → marts → one campaign selection.

    The renewal campaign is selected with a holdout so the report has treatment and holdout groups.
    """
    if "path" in _built:
        return _built["path"]
    from kizuna.transform import dbt_runner

    root = Path(tempfile.mkdtemp(prefix="kizuna-report-demo-"))
    settings = demo_settings(root)
    publish_demo_raw(settings, CUSTOMERS, seed=7, as_of=AS_OF)
    with connect(settings.warehouse) as con:
        ensure_tracking_tables(con)  # inside_sales_kpis_monthly counts intent CSQLs: the engagement inputs exist
    dbt_runner.build(settings, AS_OF, select=SELECT)
    campaign = load_campaign(settings.campaigns_dir / "renewal_reminder.yml")
    campaign = campaign.model_copy(update={"holdout_percent": HOLDOUT_PERCENT})
    with connect(settings.warehouse) as con:
        selection = select_recipients(con, campaign, "demo-run-1", SELECTED_ON, settings)
    assert selection.selected > 0 and selection.holdout > 0, selection
    _built["path"] = settings.warehouse
    return settings.warehouse
