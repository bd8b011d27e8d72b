"""The source contract: which files a source directory holds, their columns and types."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ColumnType(StrEnum):
    """Logical column types; each maps to one DuckDB type in the raw schema."""

    TEXT = "VARCHAR"
    INTEGER = "BIGINT"
    MONEY = "DECIMAL(18,2)"
    NUMBER = "DOUBLE"
    DATE = "DATE"
    TIMESTAMP = "TIMESTAMP"  # stored in UTC; naive input is read in the configured time zone
    BOOLEAN = "BOOLEAN"


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType = ColumnType.TEXT
    required: bool = False
    allowed: tuple[str, ...] = ()
    default: str | None = None


@dataclass(frozen=True)
class Table:
    """One raw table: a CSV file (or .xlsx where allowed) in the source directory."""

    name: str
    key: str | None
    columns: tuple[Column, ...]
    required: bool = False
    excel_allowed: bool = False

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


T = ColumnType
SUBSCRIPTION_STATUSES = ("active", "trialing", "paused", "past_due", "canceled")

TABLES: tuple[Table, ...] = (
    Table(
        "customers",
        key="customer_id",
        required=True,
        excel_allowed=True,
        columns=(
            Column("customer_id", required=True),
            Column("name", required=True),
            Column("industry"),
            Column("employee_count", T.INTEGER),
            Column("prefecture"),
            Column("country"),
            Column("created_at", T.TIMESTAMP),
            Column("owner_email"),
            Column("cs_owner_email"),
        ),
    ),
    Table(
        "contacts",
        key="contact_id",
        columns=(
            Column("contact_id", required=True),
            Column("customer_id", required=True),
            Column("email", required=True),
            Column("name"),
            Column("role"),
            Column("is_primary", T.BOOLEAN),
            Column("marketing_opt_in", T.BOOLEAN),
            Column("locale", allowed=("ja", "en")),
        ),
    ),
    Table(
        "subscriptions",
        key="subscription_id",
        required=True,
        columns=(
            Column("subscription_id", required=True),
            Column("customer_id", required=True),
            Column("start_date", T.DATE, required=True),
            Column("end_date", T.DATE),
            Column("mrr", T.MONEY),
            Column("amount", T.MONEY),
            Column("billing_period_months", T.INTEGER),
            Column("product"),
            Column("plan"),
            Column("quantity", T.INTEGER),
            Column("plan_limit", T.NUMBER),
            Column("contract_term_months", T.INTEGER),
            Column("currency", default="JPY"),
            Column("status", allowed=SUBSCRIPTION_STATUSES),
            Column("cancel_reason"),
        ),
    ),
    Table(
        "invoices",
        key="invoice_id",
        columns=(
            Column("invoice_id", required=True),
            Column("customer_id", required=True),
            Column("subscription_id"),
            Column("issued_at", T.TIMESTAMP, required=True),
            Column("period_start", T.DATE),
            Column("period_end", T.DATE),
            Column("amount", T.MONEY, required=True),
            Column("tax", T.MONEY),
            Column("currency", default="JPY"),
            Column("status", allowed=("paid", "open", "void", "refunded")),
        ),
    ),
    Table(
        "usage",
        key=None,
        columns=(
            Column("customer_id", required=True),
            Column("month", T.DATE, required=True),
            Column("metric", required=True),
            Column("value", T.NUMBER, required=True),
        ),
    ),
    Table(
        "deals",
        key="deal_id",
        columns=(
            Column("deal_id", required=True),
            Column("customer_id", required=True),
            Column("type", allowed=("new", "upsell", "cross_sell", "renewal")),
            Column("stage"),
            Column("amount", T.MONEY),
            Column("created_at", T.TIMESTAMP),
            Column("closed_at", T.TIMESTAMP),
            Column("is_won", T.BOOLEAN),
            Column("source"),
        ),
    ),
    Table(
        "activities",
        key="activity_id",
        columns=(
            Column("activity_id", required=True),
            Column("customer_id", required=True),
            Column("type", allowed=("call", "meeting", "email", "visit", "note")),
            Column("occurred_at", T.TIMESTAMP, required=True),
            Column("owner_email"),
            Column("outcome"),
        ),
    ),
    Table(
        "support_tickets",
        key="ticket_id",
        columns=(
            Column("ticket_id", required=True),
            Column("customer_id", required=True),
            Column("created_at", T.TIMESTAMP, required=True),
            Column("category"),
        ),
    ),
)

TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

# Columns every raw table carries besides the contract's, so any finding can name its origin.
SOURCE_FILE_COLUMN = "_source_file"
SOURCE_ROW_COLUMN = "_source_row"  # spreadsheet numbering: the header is row 1, the first record row 2
