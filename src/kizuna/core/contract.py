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
    """One column. An optional column may be left out of the file or left blank in a row: `blank` says what
    that means, and `default` is the value dbt's staging model puts in its place (once, there and nowhere
    else; the raw tables keep what the file said). A default of None keeps the blank as NULL."""

    name: str
    type: ColumnType = ColumnType.TEXT
    required: bool = False
    allowed: tuple[str, ...] = ()
    default: str | None = None
    blank: str = ""


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
UNKNOWN = "unknown"  # the meaning of most blanks: the models leave the value out of whatever needs it

TABLES: tuple[Table, ...] = (
    Table(
        "customers",
        key="customer_id",
        required=True,
        excel_allowed=True,
        columns=(
            Column("customer_id", required=True),
            Column("name", required=True),
            Column("industry", blank="unknown (its own group in breakdowns)"),
            Column("employee_count", T.INTEGER, blank="unknown (company size band `unknown`)"),
            Column("prefecture", blank=UNKNOWN),
            Column("country", blank=UNKNOWN),
            Column("created_at", T.TIMESTAMP, blank="unknown (tenure counts from the first paid month anyway)"),
            Column("owner_email", blank="no dedicated account executive: the inside-sales queue"),
            Column("cs_owner_email", blank="no customer-success manager"),
        ),
    ),
    Table(
        "contacts",
        key="contact_id",
        columns=(
            Column("contact_id", required=True),
            Column("customer_id", required=True),
            Column("email", required=True),
            Column("name", blank="unknown (templates greet the company)"),
            Column("role", blank=UNKNOWN),
            Column(
                "is_primary",
                T.BOOLEAN,
                default="false",
                blank="`false`; a customer with no primary contact has its first (by contact_id) as primary",
            ),
            Column(
                "marketing_opt_in",
                T.BOOLEAN,
                blank="consent not recorded (`marketing_consent` unknown): mailed only under the business relationship",
            ),
            Column("locale", allowed=("ja", "en"), blank="the campaign's language"),
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
            Column("end_date", T.DATE, blank="open-ended (runs through the as-of month)"),
            Column(
                "mrr", T.MONEY, blank="derived from `amount` / `billing_period_months` (one of the two is required)"
            ),
            Column("amount", T.MONEY, blank="`mrr` is used"),
            Column("billing_period_months", T.INTEGER, blank="`mrr` is used"),
            Column("product", blank="unknown (no cross-sell signal)"),
            Column("plan", blank=UNKNOWN),
            Column("quantity", T.INTEGER, blank=UNKNOWN),
            Column("plan_limit", T.NUMBER, blank="no limit (no near-plan-limit signal)"),
            Column("contract_term_months", T.INTEGER, default="1", blank="`1` (month-to-month)"),
            Column("currency", default="JPY", blank="`JPY`"),
            Column("status", allowed=SUBSCRIPTION_STATUSES, default="active", blank="`active` (the dates decide)"),
            Column("cancel_reason", blank=UNKNOWN),
        ),
    ),
    Table(
        "invoices",
        key="invoice_id",
        columns=(
            Column("invoice_id", required=True),
            Column("customer_id", required=True),
            Column("subscription_id", blank="not tied to a subscription (no past-due dating)"),
            Column("issued_at", T.TIMESTAMP, required=True),
            Column("period_start", T.DATE, blank=UNKNOWN),
            Column("period_end", T.DATE, blank=UNKNOWN),
            Column("amount", T.MONEY, required=True),
            Column("tax", T.MONEY, blank=UNKNOWN),
            Column("currency", default="JPY", blank="`JPY`"),
            Column(
                "status",
                allowed=("paid", "open", "void", "refunded"),
                blank="unknown: never counted as paid or open (past-due dating and purchase signals skip it)",
            ),
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
            Column("type", allowed=("new", "upsell", "cross_sell", "renewal"), blank=UNKNOWN),
            Column("stage", blank=UNKNOWN),
            Column("amount", T.MONEY, blank=UNKNOWN),
            Column("created_at", T.TIMESTAMP, blank=UNKNOWN),
            Column("closed_at", T.TIMESTAMP, blank="still open"),
            Column("is_won", T.BOOLEAN, blank="not won"),
            Column("source", blank=UNKNOWN),
            Column("owner_email", blank="the customer's owner_email, else the inside-sales queue"),
            Column("created_by_email", blank="unknown: the CSQL's creation is credited to `(unattributed)`"),
            Column("handed_off_at", T.TIMESTAMP, blank="not handed off to an account executive (yet)"),
            Column("accepted_at", T.TIMESTAMP, blank="not accepted (yet)"),
            Column("rejected_at", T.TIMESTAMP, blank="not rejected"),
            Column(
                "next_review_on",
                T.DATE,
                blank="no review date: no follow_up_due signal from this deal (a closed deal's date is ignored)",
            ),
        ),
    ),
    Table(
        "activities",
        key="activity_id",
        columns=(
            Column("activity_id", required=True),
            Column("customer_id", required=True),
            Column("type", allowed=("call", "meeting", "email", "visit", "note"), blank="unknown (not a touch)"),
            Column("occurred_at", T.TIMESTAMP, required=True),
            Column("owner_email", blank=UNKNOWN),
            Column("outcome", blank=UNKNOWN),
            Column(
                "next_review_on",
                T.DATE,
                blank="no review date set by this activity (a rep logging `later` puts the date to come back here)",
            ),
        ),
    ),
    Table(
        "support_tickets",
        key="ticket_id",
        columns=(
            Column("ticket_id", required=True),
            Column("customer_id", required=True),
            Column("created_at", T.TIMESTAMP, required=True),
            Column("category", blank=UNKNOWN),
        ),
    ),
    Table(
        "fx_rates",
        key=None,
        columns=(
            Column("month", T.DATE, required=True),
            Column("currency", required=True),
            Column("rate", T.NUMBER, required=True),
            Column("reporting_currency", blank="the reporting currency (dbt var `reporting_currency`, JPY)"),
        ),
    ),
)

TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}
# What a source directory must hold besides the required columns: a price for every subscription.
PRICE_RULE = "subscriptions need `mrr`, or `amount` with `billing_period_months`, in every row"


def defaults() -> dict[tuple[str, str], str]:
    """(table, column) -> the value staging puts in place of a blank: the one list a sources check can show."""
    return {(t.name, c.name): c.default for t in TABLES for c in t.columns if c.default is not None}


# Columns every raw table carries besides the contract's, so any finding can name its origin.
SOURCE_FILE_COLUMN = "_source_file"
SOURCE_ROW_COLUMN = "_source_row"  # spreadsheet numbering: the header is row 1, the first record row 2

# What each optional table and column adds, as `kizuna sources check` tells a data engineer before a first run.
UNLOCKS: dict[str, str] = {
    "contacts": "email campaigns (recipients with consent and locale), the contacts mart",
    "invoices": "MRR for customers billed by invoice, the purchase_frequency_drop signal",
    "usage": "the usage_drop and near_plan_limit signals, usage features of the churn and expansion scores",
    "deals": "CSQL and win-rate KPIs, deal forecasts, expansion attribution",
    "activities": "the no_recent_touch signal, activity KPIs per rep, dormant_reactivation",
    "support_tickets": "the support_spike signal, support features of the churn score",
    "fx_rates": "your own exchange rates for amounts in other currencies (else the shipped monthly rates)",
    "deals.owner_email": "the closer's credit for won CSQLs in per-rep KPIs (else the customer's owner)",
    "deals.created_by_email": "the creator's credit for CSQLs in per-rep KPIs",
    "deals.handed_off_at": "the CSQL hand-off to the account executive and its SLA",
    "deals.accepted_at": "accepted hand-offs and the hand-off SLA",
    "deals.rejected_at": "rejected hand-offs and the hand-off SLA",
    "deals.next_review_on": "the follow_up_due signal on the deal's review date (call lists and CRM tasks)",
    "activities.next_review_on": "the follow_up_due signal when a rep logs `later` with a date to come back",
    "customers.industry": "segments and audiences by industry",
    "customers.employee_count": "company-size bands in the growth-potential part of the rank, scores and reports",
    "customers.prefecture": "segments by region",
    "customers.country": "segments by country",
    "customers.created_at": "the customer's age in scores (tenure itself comes from subscriptions)",
    "customers.owner_email": "owners on call lists and per-rep KPIs, owner digests",
    "customers.cs_owner_email": "customer-success owners on call lists",
    "contacts.name": "names in email greetings",
    "contacts.role": "the contact's role on call lists",
    "contacts.is_primary": "the primary contact campaigns with contacts: primary mail",
    "contacts.marketing_opt_in": "recorded consent as the lawful basis for advertising email",
    "contacts.locale": "Japanese or English templates per contact (default: ja)",
    "subscriptions.end_date": "churn dates and renewals (renewal_upcoming, renewal_reminder)",
    "subscriptions.product": "products held, cross-sell audiences",
    "subscriptions.plan": "plans on call lists and renewals",
    "subscriptions.quantity": "seats per subscription",
    "subscriptions.plan_limit": "the near_plan_limit signal and upsell_plan_limit",
    "subscriptions.contract_term_months": "renewal dates of term contracts (default: 1, monthly)",
    "subscriptions.currency": "amounts in other currencies converted to yen (default: JPY)",
    "subscriptions.status": "paused and past-due subscriptions told apart (default: active)",
    "subscriptions.cancel_reason": "churn by reason",
}
