"""The ops schema, once: every ops (and quarantine) table's name and DDL, and the migrations its ensure runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kizuna.core.connection import Connection

OPS_SCHEMA = "ops"
QUARANTINE_SCHEMA = "quarantine"


@dataclass(frozen=True)
class OpsTable:
    """One table kizuna writes beside the marts: its qualified name and the column list of its CREATE TABLE.

    ``prepare`` runs before the CREATE TABLE IF NOT EXISTS and ``upgrade`` after it: the migrations of tables
    written by an older layout, so that every caller of ensure() sees the same, current table.
    """

    name: str
    columns: str
    prepare: Callable[[Connection], None] | None = None
    upgrade: Callable[[Connection], None] | None = None

    def __str__(self) -> str:
        return self.name

    @property
    def schema(self) -> str:
        return self.name.partition(".")[0]

    @property
    def table(self) -> str:
        return self.name.partition(".")[2]


def ensure(con: Connection, *tables: OpsTable) -> None:
    """Create each table (and its schema) when missing, empty; bring an older layout up to date. Idempotent."""
    for table in tables:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {table.schema}")
        if table.prepare is not None:
            table.prepare(con)
        con.execute(f"CREATE TABLE IF NOT EXISTS {table.name} ({table.columns})")
        if table.upgrade is not None:
            table.upgrade(con)


def _columns(con: Connection, table: OpsTable) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [table.schema, table.table],
    ).fetchall()
    return {str(r[0]) for r in rows}


# --- loads, the gate and quarantine ---------------------------------------------------------------------------

LOADS = OpsTable(
    f"{OPS_SCHEMA}.loads",
    "load_id VARCHAR, published_at TIMESTAMP, source_dir VARCHAR, table_name VARCHAR, source_file VARCHAR, "
    "encoding VARCHAR, row_count BIGINT, sha256 VARCHAR, staged_rows BIGINT",
)
GATE_RESULTS = OpsTable(
    f"{OPS_SCHEMA}.gate_results",
    "load_id VARCHAR, checked_at TIMESTAMP, suite VARCHAR, table_name VARCHAR, expectation VARCHAR, "
    "column_name VARCHAR, severity VARCHAR, success BOOLEAN, unexpected_count BIGINT",
)
# Rows the gate moved out of a load; staged beside the load first (kizuna.quality.quarantine), same columns.
QUARANTINE_ROWS = OpsTable(
    f"{QUARANTINE_SCHEMA}.rows",
    "load_id VARCHAR, quarantined_at TIMESTAMP, table_name VARCHAR, source_file VARCHAR, source_row BIGINT, "
    "column_name VARCHAR, rule VARCHAR, value VARCHAR, severity VARCHAR, record VARCHAR",
)

# --- builds and runs ------------------------------------------------------------------------------------------

# Columns ops.dbt_builds gained after its first layout (docs/incremental.md): the fingerprint of the incremental
# models' SQL and vars the build ran with, and the months it rebuilt (NULL month: every month).
DBT_BUILDS_ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("fingerprint", "VARCHAR"),
    ("rebuild_from_month", "DATE"),
    ("rebuilt", "VARCHAR"),
)


def _upgrade_dbt_builds(con: Connection) -> None:
    for name, kind in DBT_BUILDS_ADDED_COLUMNS:
        con.execute(f"ALTER TABLE {DBT_BUILDS} ADD COLUMN IF NOT EXISTS {name} {kind}")


DBT_BUILDS = OpsTable(
    f"{OPS_SCHEMA}.dbt_builds",
    """
            build_id VARCHAR PRIMARY KEY, as_of DATE NOT NULL, selector VARCHAR,
            started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP,
            status VARCHAR NOT NULL CHECK (status IN ('running', 'passed', 'failed')), detail VARCHAR""",
    upgrade=_upgrade_dbt_builds,
)
FLOW_RUNS = OpsTable(
    f"{OPS_SCHEMA}.flow_runs",
    "flow_run_id VARCHAR NOT NULL, flow VARCHAR NOT NULL, run_id VARCHAR, load_id VARCHAR, "
    "recorded_at TIMESTAMP NOT NULL",
)

# --- campaigns ------------------------------------------------------------------------------------------------

LEDGER_STATES = ("pending", "sending", "accepted", "failed_permanent", "unknown")
# The first ledger's states, before sending/unknown: sent → accepted, failed → failed_permanent.
_OLD_LEDGER_STATES = {"pending": "pending", "sent": "accepted", "failed": "failed_permanent"}
_LEDGER_COLUMNS = f"""
            message_key VARCHAR PRIMARY KEY,
            campaign VARCHAR NOT NULL,
            contact_id VARCHAR NOT NULL,
            email VARCHAR NOT NULL,
            occasion VARCHAR NOT NULL,
            run_id VARCHAR NOT NULL,
            state VARCHAR NOT NULL CHECK (state IN ({", ".join(f"'{s}'" for s in LEDGER_STATES)})),
            backend VARCHAR,
            provider_message_id VARCHAR,
            error VARCHAR,
            attempts INTEGER NOT NULL DEFAULT 0,
            claimed_at TIMESTAMP NOT NULL,
            sending_at TIMESTAMP,
            finished_at TIMESTAMP"""


def _migrate_ledger_from_sent_failed(con: Connection) -> None:
    """Ledgers written before the sending/unknown states (no attempts column) are rebuilt in the new layout."""
    if "attempts" in _columns(con, SEND_LEDGER):
        return
    mapping = " ".join(f"WHEN '{old}' THEN '{new}'" for old, new in _OLD_LEDGER_STATES.items())
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE TABLE {OPS_SCHEMA}.send_ledger_new ({_LEDGER_COLUMNS})")
        con.execute(f"""
            INSERT INTO {OPS_SCHEMA}.send_ledger_new
                (message_key, campaign, contact_id, email, occasion, run_id, state, backend, provider_message_id,
                 error, attempts, claimed_at, finished_at)
            SELECT message_key, campaign, contact_id, email, occasion, run_id, CASE state {mapping} END, backend,
                   provider_message_id, error, CASE WHEN state = 'pending' THEN 0 ELSE 1 END, claimed_at,
                   finished_at
            FROM {SEND_LEDGER}""")
        con.execute(f"DROP TABLE {SEND_LEDGER}")
        con.execute(f"ALTER TABLE {OPS_SCHEMA}.send_ledger_new RENAME TO send_ledger")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


SEND_LEDGER = OpsTable(f"{OPS_SCHEMA}.send_ledger", _LEDGER_COLUMNS, upgrade=_migrate_ledger_from_sent_failed)

# (column, type) of a campaign selection's rows, in order: ops.campaign_recipients, and ops.campaign_exclusions with
# exclusion_reason after them (kizuna.campaigns.select writes both).
SELECTION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "VARCHAR"), ("as_of", "DATE"), ("campaign", "VARCHAR"), ("variant", "VARCHAR"),
    ("customer_id", "VARCHAR"), ("customer_name", "VARCHAR"), ("contact_id", "VARCHAR"), ("contact_name", "VARCHAR"),
    ("email", "VARCHAR"), ("locale", "VARCHAR"), ("owner_email", "VARCHAR"), ("cc_email", "VARCHAR"),
    ("from_email", "VARCHAR"), ("occasion", "VARCHAR"), ("renewal_on", "DATE"), ("days_to_renewal", "INTEGER"),
    ("product", "VARCHAR"), ("plan", "VARCHAR"), ("mrr", "DECIMAL(18,2)"), ("currency", "VARCHAR"),
    ("contract_term_months", "INTEGER"), ("message_key", "VARCHAR"), ("is_selected", "BOOLEAN"),
    ("reasons", "VARCHAR"), ("context", "VARCHAR"),
)  # fmt: skip
_SELECTION_COLUMNS = ", ".join(f"{name} {kind}" for name, kind in SELECTION_COLUMNS)


def _set_aside_recipients_v1(con: Connection) -> None:
    """The first layout, before holdouts (no variant column): kept for audits as campaign_recipients_v1."""
    columns = _columns(con, CAMPAIGN_RECIPIENTS)
    if columns and "variant" not in columns:
        con.execute(f"ALTER TABLE {CAMPAIGN_RECIPIENTS} RENAME TO campaign_recipients_v1")


# One row per selected contact of a run (treatment and holdout), and one per contact left out, with why.
CAMPAIGN_RECIPIENTS = OpsTable(
    f"{OPS_SCHEMA}.campaign_recipients", _SELECTION_COLUMNS, prepare=_set_aside_recipients_v1
)
CAMPAIGN_EXCLUSIONS = OpsTable(f"{OPS_SCHEMA}.campaign_exclusions", f"{_SELECTION_COLUMNS}, exclusion_reason VARCHAR")
CAMPAIGN_HOLDS = OpsTable(
    f"{OPS_SCHEMA}.campaign_holds",
    """
            run_id VARCHAR NOT NULL, campaign VARCHAR NOT NULL, reason VARCHAR NOT NULL,
            selected BIGINT NOT NULL, previous_selected BIGINT,
            status VARCHAR NOT NULL CHECK (status IN ('waiting', 'approved', 'rejected')),
            held_at TIMESTAMP NOT NULL, decided_at TIMESTAMP, decided_by VARCHAR,
            PRIMARY KEY (run_id, campaign)""",
)
CALL_LIST = OpsTable(
    f"{OPS_SCHEMA}.call_list",
    """run_id VARCHAR, as_of DATE, campaign VARCHAR,
            priority INTEGER, owner_email VARCHAR, customer_id VARCHAR, customer_name VARCHAR, rank VARCHAR,
            mrr DECIMAL(18,2), signals VARCHAR, days_since_last_touch INTEGER, hypothesis VARCHAR,
            next_action VARCHAR, reasons VARCHAR""",
)

# --- tracking -------------------------------------------------------------------------------------------------

# custom_args kizuna sets on every message (kizuna.email.message), echoed by SendGrid as top-level keys.
CUSTOM_ARGS = ("message_key", "send_id", "run_id", "campaign", "template", "locale", "variant")
# (column, DuckDB type) of ops.email_events, in order; the loader fills all but loaded_at from each event.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("sg_event_id", "VARCHAR"),
    ("sg_message_id", "VARCHAR"),
    ("event", "VARCHAR"),
    ("email", "VARCHAR"),
    ("event_timestamp", "BIGINT"),
    ("event_at", "TIMESTAMP"),
    ("url", "VARCHAR"),
    *((name, "VARCHAR") for name in CUSTOM_ARGS),
    ("is_machine_open", "BOOLEAN"),
    ("bounce_type", "VARCHAR"),
    ("reason", "VARCHAR"),
    ("status", "VARCHAR"),
    ("asm_group_id", "BIGINT"),
    ("useragent", "VARCHAR"),
    ("categories", "VARCHAR"),
    ("payload", "VARCHAR"),
    ("received_at", "TIMESTAMP"),
    ("segment", "VARCHAR"),
    ("segment_offset", "BIGINT"),
)
_EVENT_COLUMNS_DDL = ",\n            ".join(
    f"{name} {kind}" + (" PRIMARY KEY" if name == "sg_event_id" else " NOT NULL" if name == "event" else "")
    for name, kind in EVENT_COLUMNS
)
EMAIL_EVENTS = OpsTable(
    f"{OPS_SCHEMA}.email_events", f"\n            {_EVENT_COLUMNS_DDL},\n            loaded_at TIMESTAMP"
)
EMAIL_EVENTS_CURSOR = OpsTable(
    f"{OPS_SCHEMA}.email_events_cursor",
    "store VARCHAR PRIMARY KEY, segment VARCHAR NOT NULL, byte_offset BIGINT NOT NULL, updated_at TIMESTAMP NOT NULL",
)
EMAIL_EVENT_REJECTS = OpsTable(
    f"{OPS_SCHEMA}.email_event_rejects",
    "segment VARCHAR, segment_offset BIGINT, reason VARCHAR, line VARCHAR, rejected_at TIMESTAMP",
)
# Addresses that get no more campaign mail (kizuna.email.consent reads it; the events loader writes it).
SUPPRESSIONS = OpsTable(
    f"{OPS_SCHEMA}.suppressions",
    "email VARCHAR PRIMARY KEY, reason VARCHAR, source VARCHAR, suppressed_at TIMESTAMP, detail VARCHAR",
)
TEMPLATE_INTENT_LINKS = OpsTable(
    f"{OPS_SCHEMA}.template_intent_links",
    """
            template VARCHAR NOT NULL, url VARCHAR NOT NULL, url_prefix VARCHAR NOT NULL, is_prefix BOOLEAN NOT NULL,
            intent VARCHAR NOT NULL, link_name VARCHAR, declared_at TIMESTAMP NOT NULL, retired_at TIMESTAMP""",
)

# --- CRM write-back (kizuna.crm.ledger, docs/crm.md) --------------------------------------------------------------

CRM_SYNC_STATES = ("pending", "created", "open", "completed", "deleted")
# One row per object kizuna writes in a CRM: an account's kizuna fields (object 'account', key = customer_id) or a
# task (object 'task', key = the task key, reason = what recurs: docs/crm.md). A task is `pending` from just
# before the batch that creates it is sent until the CRM's id is known.
CRM_SYNC = OpsTable(
    f"{OPS_SCHEMA}.crm_sync",
    f"""
            crm VARCHAR NOT NULL, object VARCHAR NOT NULL, kizuna_key VARCHAR NOT NULL, crm_id VARCHAR,
            customer_id VARCHAR, reason VARCHAR, values_hash VARCHAR, sent_values VARCHAR,
            state VARCHAR NOT NULL CHECK (state IN ({", ".join(repr(s) for s in CRM_SYNC_STATES)})),
            first_seen_on DATE, created_at TIMESTAMP, updated_at TIMESTAMP NOT NULL, closed_at TIMESTAMP,
            PRIMARY KEY (crm, object, kizuna_key)""",
)


# --- changes per load (issue 22: ingest what changed) ---------------------------------------------------------

# Columns ops.loads gained after its first layout, added in place by upgrade_loads (kizuna.core.warehouse
# publish_incoming): status is "staged" (parsed from its file or pull) or "unchanged" (same sha256 and reading
# options as the last published load: not parsed, raw kept as is); the counts are keys against the last load.
LOADS_ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("staged_rows", "BIGINT"),
    ("options_sha256", "VARCHAR"),
    ("status", "VARCHAR"),
    ("inserted_rows", "BIGINT"),
    ("updated_rows", "BIGINT"),
    ("deleted_rows", "BIGINT"),
    # The earliest month the load changes in what the incremental models read (kizuna.transform.rebuild_plan);
    # NULL when unknown (a first load): the next build rebuilds every month.
    ("rebuild_from_month", "DATE"),
)


def upgrade_loads(con: Connection) -> None:
    """ops.loads as it is now, whatever layout an older kizuna created it in."""
    ensure(con, LOADS)
    for name, kind in LOADS_ADDED_COLUMNS:
        con.execute(f"ALTER TABLE {LOADS} ADD COLUMN IF NOT EXISTS {name} {kind}")


# One row per key a published load inserted, updated or deleted in a raw table (the key of a keyless table is
# its row's hash), so later steps can find the dates a change touches: the new row is in raw, the row it
# replaced (updated, deleted) in before_row, as JSON with the raw table's columns.
LOAD_CHANGES = OpsTable(
    f"{OPS_SCHEMA}.load_changes",
    "load_id VARCHAR NOT NULL, table_name VARCHAR NOT NULL, key VARCHAR, "
    "change VARCHAR NOT NULL CHECK (change IN ('inserted', 'updated', 'deleted')), before_row VARCHAR",
)


# --- the customers a build rebuilds from their own month (issue 22: incremental marts, docs/incremental.md) ---------

# Per published load, the months its changes touch by customer (kizuna.transform.rebuild_plan): one row with
# customer_id NULL, the month from which every customer is rebuilt (the last closed month, or an fx rate's), and
# one row per customer whose changes reach before it (a merge: both customers; a backdated cancellation: its own).
# A load without the NULL row was not recorded: its build rebuilds whole months.
LOAD_CUSTOMER_MONTHS = OpsTable(
    f"{OPS_SCHEMA}.load_customer_months", "load_id VARCHAR NOT NULL, customer_id VARCHAR, month DATE NOT NULL"
)
# What the next dbt build rebuilds by customer: each customer's rows from its month (the incremental models, and the
# data tests declared only_rebuilt_months, read it when KIZUNA_REBUILD_ALL_CUSTOMERS_FROM_MONTH is set); written
# again before every build.
REBUILD_CUSTOMERS = OpsTable(f"{OPS_SCHEMA}.rebuild_customers", "customer_id VARCHAR NOT NULL, month DATE NOT NULL")
# Per published load, the customers whose other inputs of the scoring snapshots changed (kizuna.transform.
# snapshot_changes: their customer row, an activity, a ticket, a deal, a subscription's product, plan or term), with
# the earliest month the change touches; one row with customer_id NULL marks the load as recorded.
LOAD_SNAPSHOT_CUSTOMERS = OpsTable(
    f"{OPS_SCHEMA}.load_snapshot_customers", "load_id VARCHAR NOT NULL, customer_id VARCHAR, month DATE NOT NULL"
)
# What the next dbt build rebuilds of the scoring snapshots by customer: each customer's snapshots whose feature
# month (outcome months included) is at or after its month (KIZUNA_REBUILD_SNAPSHOTS_FROM_MONTH set); written again
# before every build.
REBUILD_SNAPSHOT_CUSTOMERS = OpsTable(
    f"{OPS_SCHEMA}.rebuild_snapshot_customers", "customer_id VARCHAR NOT NULL, month DATE NOT NULL"
)
