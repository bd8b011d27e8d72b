"""Layer 3, the pipeline: each step of a run as a plain function that a flow task and a CLI command both call.

No Prefect and no Typer here (docs/architecture.md): a flow decides how a step is retried, watched and alerted
on; a command decides how it is printed; what the step does is written once, below.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import date
from typing import Any

from pydantic import SecretStr

from kizuna.campaigns.run import run_campaign
from kizuna.campaigns.spec import Campaign, load_campaigns
from kizuna.core import flow_runs, ops
from kizuna.core.calendar import outside_send_window
from kizuna.core.contract import TABLES, UNLOCKS, ColumnType
from kizuna.core.locks import wait_until_free
from kizuna.core.runlog import step
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.crm.plan import ACCOUNT_FIELDS, build_plan
from kizuna.crm.sync import SyncSummary, sync
from kizuna.crm.target import CrmError, CrmTarget, FieldSpec, FieldType, SetupChange
from kizuna.quality.gate import GateVerdict, gate_and_publish
from kizuna.quality.suites import load_suites
from kizuna.reporting.summary import CampaignSummary, RunSummary, kpi_months, last_full_month_kpis, sends_by_state
from kizuna.scoring.model import NotEnoughHistoryError
from kizuna.scoring.run import ScoreResult, score_warehouse, train_and_store
from kizuna.scoring.store import StoredModel
from kizuna.sources.ingest import IngestResult, stage_sources
from kizuna.tracking.loader import ensure_tracking_tables
from kizuna.transform import dbt_runner, rebuild_plan

log = logging.getLogger(__name__)


def import_step_libraries() -> None:
    """Import now what the gate and the build import on first use: Great Expectations (≈ 2.4 s of CPU, PySpark
    with it) and dbt (≈ 1.6 s). `kizuna run` calls it while Prefect's temporary server starts up, so these imports
    overlap that wait instead of lengthening the steps (docs/operations.md); every daily run needs both."""
    import great_expectations  # noqa: F401  (kizuna.quality.validate)
    from dbt.cli.main import dbtRunner  # noqa: F401  (kizuna.transform.dbt_runner)


def wait_for_warehouse(settings: Settings) -> None:
    """Wait until no other process holds the DuckDB file (an analyst's session), up to the configured wait."""
    wait_until_free(settings.warehouse_target, wait_seconds=settings.warehouse_wait_seconds)


def ingest(settings: Settings) -> IngestResult:
    """Stage every source (files, or the connectors' pulls) in the incoming schema."""
    settings.require_checkout()  # the fx seed and the contract's mappings come from the checkout
    wait_for_warehouse(settings)
    return stage_sources(settings, progress=step("ingest", len(TABLES)))


def gate(settings: Settings, as_of: date, *, accept_drop: bool = False, accept_outliers: bool = False) -> GateVerdict:
    """The quality gate on the staged load; publishes it to raw when no critical check fails, else raises."""
    settings.require_checkout()  # without expectations/ the gate would check nothing and publish the load
    wait_for_warehouse(settings)
    suites = len(load_suites(settings.expectations_dir, "raw"))
    return gate_and_publish(
        settings,
        as_of,
        accept_drop=accept_drop,
        accept_outliers=accept_outliers,
        progress=step("quality gate", suites),
        before_publish=lambda con: rebuild_plan.record_staged_month(con, as_of),  # the build's first month
    )


def prepare_marts_inputs(settings: Settings) -> None:
    """The ops tables the engagement models read exist (empty on a fresh warehouse), so dbt always builds."""
    wait_for_warehouse(settings)
    with connect(settings.warehouse_target) as con:
        ensure_tracking_tables(con, settings.templates_dir)  # and the intent links templates declare now


def build(
    settings: Settings,
    as_of: date,
    invoke: dbt_runner.Invoker | None = None,
    *,
    logger: logging.Logger | logging.LoggerAdapter[Any] = log,
) -> dbt_runner.BuildResult:
    """dbt build and test every model; raises on any failure. `invoke` runs dbt another way (Prefect node tasks).

    The incremental models rebuild from the earliest month the loads published since the last good build change,
    every month when that is unknown, from nothing with settings.full_refresh or when their SQL or vars changed
    (kizuna.transform.rebuild_plan, docs/incremental.md); `logger` gets the line that says which.
    """
    settings.require_checkout()
    wait_for_warehouse(settings)
    with connect(settings.warehouse_target) as con:
        months = rebuild_plan.plan(con, settings.dbt_project_dir, as_of, full_refresh=settings.full_refresh)
    rebuilt = months.describe()
    logger.info("dbt build, incremental models: %s; scoring snapshots: %s", rebuilt, months.describe_snapshots())
    if months.full_refresh and not settings.full_refresh:
        settings = settings.model_copy(update={"full_refresh": True})
    advance = step("dbt build")
    result = dbt_runner.build(
        settings,
        as_of,
        on_node=None if invoke is not None else lambda node: advance(node.name.split(".")[-1]),
        invoke=invoke,
        rebuild_from_month=months.month,
        rebuild_all_customers_from=months.customers_from,
        rebuild_snapshots_from=months.snapshots_from,
        tested_from=months.tested_from,
        fingerprint=months.fingerprint,
        rebuilt=rebuilt,
    )
    result.rebuilt = rebuilt
    return result


def score(
    settings: Settings, as_of: date, *, logger: logging.Logger | logging.LoggerAdapter[Any] = log
) -> ScoreResult | None:
    """Churn risk, expansion propensity and deal forecasts, before campaigns so they select on fresh scores.

    A young warehouse cannot train a model yet: that is logged and None returned, and the run goes on. `logger`
    is where a flow wants these lines (its run log, shown in the Prefect UI).
    """
    wait_for_warehouse(settings)
    step("scores")
    try:
        result = score_warehouse(settings, as_of)
    except NotEnoughHistoryError as exc:
        logger.warning("no scores this run: %s", exc)
        return None
    if result.trained:
        logger.info("scores model %s trained in this run: %s", result.model_version, result.training_reason)
    return result


def train_scores(settings: Settings, as_of: date | None = None) -> StoredModel:
    """Train the scores models on the warehouse as dbt last built it and make them current (weekly)."""
    wait_for_warehouse(settings)
    return train_and_store(settings, as_of)


def enabled_campaigns(settings: Settings) -> list[Campaign]:
    """The campaigns a run sends, in file-name order: every enabled campaign file in the campaigns folder."""
    return load_campaigns(settings.campaigns_dir)


def send_campaign(
    settings: Settings,
    campaign: Campaign,
    run_id: str,
    as_of: date,
    *,
    lock: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> CampaignSummary:
    """Select, render and send one campaign (or hold it for approval); nothing outside the send window.

    `lock` is the writer lock to hold while sending, taken only inside the window: a skipped campaign waits
    for nobody.
    """
    reason = outside_send_window(settings)
    if reason:
        return CampaignSummary(campaign.name, 0, {}, 0, 0, status="outside_window", note=reason)
    with lock():  # run_campaign waits for the file itself, in the one open it sends through
        return run_campaign(settings, campaign, run_id, as_of)


def record_flow_run(
    settings: Settings, flow_run_id: str | None, flow: str, *, run_id: str | None, load_id: str | None = None
) -> None:
    """Remember which flow run a kizuna run id (and load id) belongs to, in ops.flow_runs (caller holds the lock)."""
    with connect(settings.warehouse_target) as con:
        flow_runs.record_run(con, flow_run_id, flow, run_id=run_id, load_id=load_id)


def stamp_sends(settings: Settings, run_id: str, flow_run_id: str | None) -> None:
    """Name the flow run on the send-ledger rows of run_id, so each leads to its run's logs (caller holds the lock)."""
    with connect(settings.warehouse_target) as con:
        flow_runs.stamp(con, ops.SEND_LEDGER.name, "run_id", run_id, flow_run_id)


def crm_target(settings: Settings) -> CrmTarget:
    """The CRM the write-back speaks to (KIZUNA_CRM_TARGET), over the connector's client (docs/crm.md)."""
    if settings.crm_target == "hubspot":
        from kizuna.connectors.hubspot_client import HubSpotApi
        from kizuna.connectors.secrets import resolve_secret
        from kizuna.crm.hubspot import HubSpotTarget

        token = resolve_secret(
            settings.hubspot_token, settings.hubspot_token_block, "the HubSpot token", "KIZUNA_HUBSPOT_TOKEN"
        )
        api = HubSpotApi(
            token, settings.hubspot_base_url, settings.connector_max_retries, settings.connector_timeout_seconds
        )
        return HubSpotTarget(api, settings.crm_account_id_property)
    if settings.crm_target == "salesforce":
        from kizuna.core import secrets
        from kizuna.crm.salesforce import SalesforceTarget

        login_url, client_id = settings.salesforce_login_url, settings.salesforce_client_id
        unset = [name for name, value in (("LOGIN_URL", login_url), ("CLIENT_ID", client_id)) if not value]
        if unset or login_url is None or client_id is None:
            names = ", ".join(f"KIZUNA_SALESFORCE_{name}" for name in unset)
            raise CrmError(f"salesforce: not configured: set {names} (docs/crm.md, Salesforce)")
        secret = secrets.resolve_secret(
            settings.salesforce_client_secret,
            settings.salesforce_client_secret_block,
            "the Salesforce consumer secret",
            "KIZUNA_SALESFORCE_CLIENT_SECRET",
            CrmError,
        )
        return SalesforceTarget(
            login_url,
            client_id,
            SecretStr(secret),
            timeout=settings.connector_timeout_seconds,
            max_retries=settings.connector_max_retries,
            account_id_field=settings.crm_account_id_property,
        )
    raise CrmError("KIZUNA_CRM_TARGET is 'none': set it to hubspot or salesforce to write to a CRM (docs/crm.md)")


def crm_setup(settings: Settings, *, dry_run: bool = False) -> list[SetupChange]:
    """Create (or, with dry_run, only check) the custom fields kizuna writes in the CRM; one change per field. On
    HubSpot also the deal and activity properties kizuna reads back (hand-offs, review dates), so reps can log them."""
    target = crm_target(settings)
    changes = target.setup(ACCOUNT_FIELDS, dry_run=dry_run)
    if settings.crm_target == "hubspot":
        from kizuna.crm.hubspot import HubSpotTarget

        assert isinstance(target, HubSpotTarget)
        for object_type, fields in _hubspot_read_back_fields(settings).items():
            changes += target.setup_properties(object_type, fields, dry_run=dry_run)
    return changes


def _hubspot_read_back_fields(settings: Settings) -> dict[str, list[FieldSpec]]:
    """The kizuna_* properties the HubSpot source reads, named as its options in the sources file say."""
    from kizuna.connectors.hubspot_mapping import HubSpotMapping, HubSpotOptions, sources_file
    from kizuna.connectors.routing import load_routing

    where = sources_file(settings.sources_config)
    mapping = HubSpotMapping(HubSpotOptions.parse(load_routing(settings).options.get("hubspot", {}), where))
    kinds: dict[ColumnType, FieldType] = {ColumnType.TIMESTAMP: "datetime", ColumnType.DATE: "date"}
    return {
        object_type: [
            FieldSpec(name, f"kizuna {column.name.replace('_', ' ')}", kinds.get(column.type, "string"), (),
                      f"{table}.{column.name}: {UNLOCKS.get(f'{table}.{column.name}', column.blank)}")
            for name, table, column in properties
        ]
        for object_type, properties in mapping.kizuna_properties().items()
    }  # fmt: skip


def crm_sync(settings: Settings, as_of: date, *, dry_run: bool = False) -> SyncSummary:
    """Write account fields and tasks to the CRM, only what changed (the caller holds the writer lock unless
    dry_run); a dry run sends and writes nothing and returns the diff."""
    target = crm_target(settings)
    wait_for_warehouse(settings)
    with connect(settings.warehouse_target, read_only=True) as con:
        plan = build_plan(con, settings, as_of)
    with connect(settings.warehouse_target, read_only=dry_run) as con:
        return sync(con, settings, target, plan, dry_run=dry_run)


def summarise(
    settings: Settings,
    as_of: date,
    staged: IngestResult,
    verdict: GateVerdict,
    built: dbt_runner.BuildResult,
    campaigns: Sequence[CampaignSummary],
    flow_run_id: str | None = None,
) -> RunSummary:
    """What the run loaded, checked, built and sent, with the KPIs of the marts it built."""
    with connect(settings.warehouse_target, read_only=True) as con:
        kpis = last_full_month_kpis(con, as_of)
        months = kpi_months(con, as_of)
        by_state = sends_by_state(con)
    return RunSummary(
        as_of=as_of,
        warehouse=settings.warehouse_label,
        rows_loaded=staged.rows,
        skipped_sources=staged.skipped,
        unchanged_sources=staged.unchanged,
        checks_passed=sum(1 for r in verdict.results if r.success),
        checks_failed_warning=len(verdict.warnings),
        gate_report=verdict.report,
        quarantined=verdict.quarantined,
        normalised=[str(change) for change in verdict.normalised],
        new_columns={s.file: s.ignored_columns for s in staged.staged if s.ignored_columns},
        models_built=built.count("model"),
        rebuilt_months=built.rebuilt,
        tests_passed=built.count("test") + built.count("unit_test"),
        kpis=kpis,
        campaigns=list(campaigns),
        outbox=str(settings.outbox_dir),
        kpi_months=months,
        sends_by_state=by_state,
        flow_run_id=flow_run_id,
    )
