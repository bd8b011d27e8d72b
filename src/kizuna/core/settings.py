"""Settings: the one reader of KIZUNA_* environment variables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parents[3]
# Published in the repository, so anyone can sign unsubscribe tokens with it: for the demo's outbox only.
DEMO_UNSUBSCRIBE_SECRET = "kizuna-demo-only-secret"
MIN_UNSUBSCRIBE_SECRET_LENGTH = 16
# A URL's scheme at the start of a warehouse setting (also once pathlib has folded its "//" into "/").
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")
# The environment variable naming a server warehouse (Settings.warehouse_url).
WAREHOUSE_URL_ENV = "KIZUNA_WAREHOUSE_URL"
# The paths under var_dir that follow it unless set on their own (KIZUNA_VAR_DIR=/data moves the warehouse too).
UNDER_VAR_DIR = {
    "source_dir": "demo-data",
    "warehouse": "warehouse.duckdb",
    "outbox_dir": "outbox",
    "events_dir": "events",
}


# What a pipeline command reads from the checkout: without them dbt cannot build, and a gate with no suites
# would check nothing and publish anything.
CHECKOUT_FILES = ("dbt_project/dbt_project.yml", "expectations/*.json")


class ProjectDirError(ValueError):
    """KIZUNA_PROJECT_DIR names a folder that is not a kizuna checkout."""


class Settings(BaseSettings):
    """Every knob of a kizuna run. Environment variables are KIZUNA_<FIELD>, e.g. KIZUNA_WAREHOUSE."""

    model_config = SettingsConfigDict(env_prefix="KIZUNA_", env_file=".env", extra="ignore", populate_by_name=True)

    project_dir: Path = Field(PROJECT_DIR, description="Checkout holding dbt_project/, templates/, campaigns/.")
    var_dir: Path = Field(
        Path("var"), description="Where runs write: warehouse, outbox, events, logs, reports, tmp (unless set apart)."
    )
    source_dir: Path = Field(
        Path("var/demo-data"),
        description="Directory of CSV/XLSX files (the source contract); default var_dir/demo-data.",
    )
    warehouse: Path = Field(
        Path("var/warehouse.duckdb"), description="The DuckDB file; default var_dir/warehouse.duckdb."
    )
    warehouse_url: SecretStr | None = Field(
        None,
        description="A PostgreSQL server as the warehouse instead of the DuckDB file: postgresql://user:password@"
        "host:port/database (docs/scaling.md). A secret: kizuna names it without its password and never passes it "
        "to a flow as a parameter. KIZUNA_WAREHOUSE or --warehouse given such a URL set this.",
    )
    outbox_dir: Path = Field(
        Path("var/outbox"), description="The local outbox: one .eml per message; default var_dir/outbox."
    )
    timezone: str = Field("Asia/Tokyo", description="Business time zone: naive timestamps and as-of dates.")

    campaigns_dir_setting: Path | None = Field(
        None,
        validation_alias="KIZUNA_CAMPAIGNS_DIR",
        description="Folder of campaign YAML files (default: campaigns/ in the project).",
    )
    lawful_basis: Literal["consent", "relationship"] = Field(
        "consent",
        description="Who may get marketing email (特定電子メール法): consent = recorded opt-in only; relationship = "
        "also contacts of current and former customers who never opted out. Suppressions always win.",
    )
    sending_disabled: bool = Field(False, description="Kill switch: no campaign sends anything while true.")
    approval_required: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Hold a campaign's first send and any audience that grew by more than audience_growth_hold "
        "for approval: auto = for real backends (not the outbox), always, or never.",
    )
    audience_growth_hold: float = Field(0.5, ge=0, description="Growth over the previous run that needs approval.")
    # Campaign approvals (four eyes): who started a held run may not approve it, unless this allows it.
    approval_allow_self: bool = Field(
        False, description="Let whoever started a held campaign run approve it too (a one-person team)."
    )
    frequency_max_emails: int = Field(2, ge=1, description="At most this many marketing emails per contact ...")
    frequency_days: int = Field(7, ge=1, description="... in this many days, across all campaigns.")

    dbt_node_tasks: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Show each dbt node as its own Prefect task: auto = when PREFECT_API_URL names a server "
        "(≈ 140 ms per node), else one dbt-build task.",
    )
    dbt_unit_tests: bool = Field(
        False, description="Also run dbt's unit tests in `kizuna run`/`kizuna build` (CI runs them anyway)."
    )
    gate_max_drop: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of any table's rows, or of total MRR, that may vanish between the last good load and "
        "what this load would publish (after quarantine) before the gate holds it (kizuna check --accept-drop).",
    )
    gate_outlier_factor: float = Field(
        100.0,
        ge=1,
        description="A value (a subscription's or a customer's MRR, an amount, a month's usage) is held as an outlier "
        "when it is more than this many times both its own value and the 99th percentile of its kind in the last "
        "good load (docs/quality.md; kizuna check --accept-outliers confirms it).",
    )

    sources_config: Path | None = Field(
        None,
        description="YAML file saying which source feeds each raw table (files, hubspot, stripe, postgres) and "
        "their non-secret options; unset means every table comes from files in source_dir (docs/sources.md).",
    )
    table_sources: str | None = Field(
        None,
        description="Overrides the sources file per table, e.g. 'customers=hubspot,subscriptions=stripe'.",
    )
    full_refresh: bool = Field(
        False,
        description="Pull every record again (connectors ignore their cursors), parse every file even when unchanged, "
        "gate every row, not only the changed ones, and rebuild dbt's incremental models from nothing "
        "(`--full-refresh`, docs/incremental.md).",
    )
    hubspot_token: SecretStr | None = Field(None, description="HubSpot private app access token.")
    hubspot_token_block: str | None = Field(
        None, description="Name of a Prefect Secret block holding the HubSpot token, used when hubspot_token is unset."
    )
    hubspot_base_url: str = Field("https://api.hubapi.com", description="HubSpot API base URL (or a test stand-in).")
    stripe_api_key: SecretStr | None = Field(None, description="Stripe restricted or secret key (read access).")
    stripe_api_key_block: str | None = Field(
        None, description="Name of a Prefect Secret block holding the Stripe key, used when stripe_api_key is unset."
    )
    stripe_api_base: str = Field("https://api.stripe.com", description="Stripe API base URL (or a test stand-in).")
    postgres_dsn: SecretStr | None = Field(
        None, description="PostgreSQL connection URL for the SQL source, e.g. postgresql://user:pw@host:5432/db."
    )
    postgres_dsn_block: str | None = Field(
        None, description="Name of a Prefect Secret block holding the PostgreSQL URL, used when postgres_dsn is unset."
    )
    postgres_schema: str = Field("public", description="Schema holding the contract's tables in the SQL source.")
    connector_max_retries: int = Field(
        6,
        ge=0,
        description="Retries of one API request after a 429, 5xx or timeout (with backoff, Retry-After honoured).",
    )
    connector_timeout_seconds: float = Field(30.0, gt=0, description="Per-request timeout of the API connectors.")

    email_backend: Literal["outbox", "sendgrid"] = Field(
        "outbox", description="outbox (.eml files, for demos and dry runs) or sendgrid (docs/delivery.md)."
    )
    sendgrid_api_key: SecretStr | None = None
    sendgrid_api_key_block: str | None = Field(
        None, description="Name of a Prefect Secret block holding the API key, used when sendgrid_api_key is unset."
    )
    sendgrid_api_host: str = Field(
        "https://api.sendgrid.com", description="SendGrid API base URL: a relay, a regional host or a test stand-in."
    )
    sendgrid_timeout_seconds: float = Field(10.0, gt=0, description="Per-request timeout; a timeout leaves 'unknown'.")
    sendgrid_sandbox_mode: bool = Field(False, description="SendGrid validates but delivers nothing (answers 200).")
    sendgrid_open_tracking: bool = True
    sendgrid_click_tracking: bool = True
    sendgrid_transport: Literal["official", "pooled"] = Field(
        "official",
        description="official: the sendgrid client (new connection per request); pooled: keep-alive connections "
        "per worker thread, for throughput (docs/delivery.md).",
    )
    sendgrid_max_rate_limit_wait_seconds: float = Field(
        120.0, ge=0, description="Longest wait for X-RateLimit-Reset after a 429; longer leaves the rest pending."
    )
    send_concurrency: int = Field(32, ge=1, le=512, description="Requests in flight at once.")
    send_rate_per_second: float = Field(1000.0, ge=0, description="Messages per second at most; 0 means no limit.")
    send_batch_size: int = Field(
        500,
        ge=1,
        description="Messages marked 'sending' in one ledger write; a crash leaves at most two batches unknown.",
    )

    events_dir: Path = Field(
        Path("var/events"),
        description="The event webhook's append-only store (JSON-lines segments); default var_dir/events.",
    )
    sendgrid_webhook_public_key: str | None = Field(
        None,
        description="SendGrid's Event Webhook verification key (base64 DER SubjectPublicKeyInfo, as SendGrid shows it).",
    )
    webhook_max_body_bytes: int = Field(5 * 1024 * 1024, ge=1, description="Larger webhook posts get 413.")
    webhook_max_age_seconds: int = Field(
        600, ge=1, description="Signed webhook posts older than this are refused as replays (403)."
    )
    webhook_clock_skew_seconds: int = Field(
        30, ge=0, le=300, description="How far in the future a signed timestamp may be (clocks differ a little)."
    )
    events_segment_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="The event store starts a new segment file past this size."
    )
    events_load_wait_seconds: float = Field(
        300.0, ge=0, description="How long `kizuna events load` waits for a held warehouse before deferring."
    )

    send_window: str = Field(
        "09:00-18:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$",
        description="Campaigns send only between these times (HH:MM-HH:MM, business time zone); 00:00-24:00 is "
        "all day. Outside it the daily run skips its campaigns and says so in the summary.",
    )
    send_on_business_days_only: bool = Field(
        True, description="Skip sending on Saturdays, Sundays and Japanese national holidays (the holidays package)."
    )
    approval_timeout_seconds: int = Field(
        24 * 3600,
        ge=1,
        description="How long a held campaign waits (paused flow run) for approve/reject in the Prefect UI; after "
        "it the hold stays waiting and the run finishes without sending that campaign.",
    )
    approval_poll_seconds: int = Field(10, ge=1, description="How often a paused run checks whether it was resumed.")
    alert_webhook_url: SecretStr | None = Field(
        None, description="Slack-style incoming webhook URL for alerts on failure or hold (a secret)."
    )
    alert_block: str | None = Field(
        None,
        description="Name of a Prefect notification block (e.g. a Slack webhook or custom webhook block) used for "
        "alerts when alert_webhook_url is unset.",
    )
    warehouse_wait_seconds: float = Field(
        600.0,
        ge=0,
        description="How long a run waits for a warehouse held by another process (another run, an analyst's "
        "DuckDB session) before failing with that process's PID.",
    )
    dbt_lock_retries: int = Field(
        3, ge=0, description="`dbt retry` attempts after nodes failed only because the DuckDB file was locked."
    )
    dbt_lock_retry_delay_seconds: float = Field(10.0, ge=0, description="Pause before each such `dbt retry`.")
    work_pool: str = Field(
        "kizuna-process", description="The Prefect process work pool `kizuna prefect setup` creates."
    )

    scores_model: Literal["auto", "gbm", "logistic"] = Field(
        "auto",
        description="Churn, expansion and deal scores: auto (each score's kind chosen by its time-based validation: "
        "gbm only when it beats logistic's ROC AUC by more than 0.001), or gbm (histogram gradient boosting) or "
        "logistic (L2 logistic regression on standardised features) forced; all calibrated (docs/scores.md).",
    )
    scores_seed: int = Field(7, description="Seed of score training: the same warehouse gives the same scores.")
    scores_validation_months: int = Field(
        3, ge=1, description="The latest labelled snapshot months held out to evaluate the scores (time-based split)."
    )
    scores_max_model_age_days: int = Field(
        14,
        ge=0,
        description="The daily run scores with the stored model (trained weekly by the train-scores flow) while it is "
        "at most this many days old; an older one is retrained in the daily run.",
    )
    scores_threads: int = Field(
        1, ge=1, description="Threads for score training; more than the free cores makes gradient boosting crawl."
    )
    scores_predict_threads: int | None = Field(
        None,
        ge=1,
        description="Threads for scoring with a trained model (probabilities and factors); unset: the cores this "
        "process may use. Same numbers whatever the count; their idle threads sleep (kizuna.scoring), so a busy "
        "machine costs no more than one thread would.",
    )

    crm_target: Literal["none", "hubspot", "salesforce"] = Field(
        "none", description="The CRM kizuna writes account fields and tasks to (`kizuna crm sync`, docs/crm.md)."
    )
    crm_owner_policy: Literal["account_owner", "queue"] = Field(
        "account_owner",
        description="Who gets a task: account_owner = the account's owner when it has one known in the CRM, else the "
        "inside-sales queue user; queue = always the queue user.",
    )
    crm_queue_email: str | None = Field(
        None, description="The CRM user (email) who owns tasks no account owner takes: the inside-sales queue."
    )
    crm_sla_days: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: {"A": 1, "B": 2, "C": 5},
        description="Business days (Tokyo calendar) from the as-of date to a task's due date, per rank, e.g. "
        "'A=1,B=2,C=5'.",
    )
    crm_customer_url: str = Field(
        "https://kizuna.example.co.jp/customers/{customer_id}",
        description="The link back to the customer in a task's body; {customer_id} is replaced.",
    )
    crm_account_id_property: str | None = Field(
        None,
        description="The CRM account field holding kizuna's customer_id (HubSpot: a company property); unset means "
        "the customer_id is the CRM's account id (as when customers are read from HubSpot).",
    )
    crm_task_cooldown_days: int = Field(
        14, ge=0, description="A task completed this recently is not created again for the same customer and reason."
    )
    salesforce_login_url: str | None = Field(
        None, description="The org's My Domain URL, e.g. https://acme.my.salesforce.com (client credentials need it)."
    )
    salesforce_client_id: str | None = Field(None, description="The connected app's consumer key (client credentials).")
    salesforce_client_secret: SecretStr | None = Field(None, description="The connected app's consumer secret.")
    salesforce_client_secret_block: str | None = Field(
        None,
        description="A Prefect Secret block holding the consumer secret, used when salesforce_client_secret is unset.",
    )

    sender_name: str = "株式会社キズナ デモ (Kizuna Demo K.K.)"
    sender_email: str = "success@example.co.jp"
    sender_postal_address: str = "〒100-0005 東京都千代田区丸の内1-1-1"
    sender_contact: str = "support@example.co.jp / 03-0000-0000"
    unsubscribe_url: str = "https://example.co.jp/unsubscribe?c={contact_token}"
    unsubscribe_secret: SecretStr = Field(
        SecretStr(DEMO_UNSUBSCRIBE_SECRET),
        description="Signs unsubscribe tokens so nobody can unsubscribe someone else; set your own in production.",
    )

    seed_addresses: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses that may receive test copies from `kizuna studio` (and only these).",
    )
    studio_host: str = Field("127.0.0.1", description="Interface `kizuna studio` listens on; keep it on loopback.")
    studio_port: int = Field(8030, ge=1, le=65535, description="Port of `kizuna studio`.")
    # Bounds on rendering one email (kizuna.email.limits, docs/templates.md "Limits"): no template can hang
    # lint, the studio or a campaign with loops, huge strings or slow filters.
    template_max_loop_iterations: int = Field(
        100_000, ge=1, description="Loop steps one message's templates may take, all {% for %} loops together."
    )
    template_max_text_chars: int = Field(
        1_000_000, ge=1_000, description="Longest string or list a template may build, and each rendered part."
    )
    template_render_seconds: float = Field(5.0, gt=0, description="Longest time rendering one message may take.")
    report_font_dir: Path | None = Field(
        None,
        description="Fonts with Japanese glyphs for report charts; default: Debian's fonts-noto-cjk directories.",
    )

    @model_validator(mode="before")
    @classmethod
    def _server_url_is_a_secret(cls, data: object) -> object:
        # KIZUNA_WAREHOUSE=postgresql://… (or --warehouse) names a server: it becomes warehouse_url, a secret.
        if isinstance(data, dict) and isinstance(data.get("warehouse"), str) and is_server_url(data["warehouse"]):
            data = dict(data)
            data["warehouse_url"] = SecretStr(data.pop("warehouse"))
        return data

    @field_validator("warehouse", mode="before")
    @classmethod
    def _warehouse_is_a_file(cls, value: object) -> object:
        # Any other URL would become a relative path ("mysql:/…") and a new DuckDB file in it.
        found = _URL_SCHEME.match(str(value)) if isinstance(value, str | Path) else None
        if found:  # name the scheme only: a URL may carry a password
            raise ValueError(
                f"a {found.group(1)}:// URL names a server kizuna cannot use as its warehouse: give a postgresql:// "
                "URL (docs/scaling.md) or a DuckDB file path such as var/warehouse.duckdb"
            )
        if isinstance(value, str | Path) and Path(value).name.startswith("-"):
            # `--warehouse --help`, the path forgotten: the next option would become a DuckDB file of that name.
            raise ValueError(
                f"{Path(value).name!r} looks like an option, not a file: give the DuckDB file's path after it, "
                "such as var/warehouse.duckdb"
            )
        return value

    @field_validator("warehouse_url", mode="before")
    @classmethod
    def _warehouse_url_is_postgresql(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text in (None, ""):
            return None
        found = _URL_SCHEME.match(str(text))
        if not is_server_url(str(text)):  # name the scheme only: the URL may carry a password
            scheme = f"a {found.group(1)}:// URL" if found else "not a URL"
            raise ValueError(f"is {scheme}: give postgresql://user:password@host:port/database")
        return value

    @field_validator("var_dir")
    @classmethod
    def _var_dir_not_a_file(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} is a file: give a directory (it is made if missing)")
        return value

    @model_validator(mode="after")
    def _follow_var_dir(self) -> Settings:
        # Each default above is var_dir's own default joined to its leaf; a path not set by itself moves with var_dir.
        for name, leaf in UNDER_VAR_DIR.items():
            if name not in self.model_fields_set:
                object.__setattr__(self, name, self.var_dir / leaf)
        return self

    @field_validator("seed_addresses", mode="before")
    @classmethod
    def _split_seed_addresses(cls, value: object) -> object:
        if isinstance(value, str):
            return [a.strip() for a in value.split(",") if a.strip()]
        return value

    @field_validator("crm_sla_days", mode="before")
    @classmethod
    def _parse_sla_days(cls, value: object) -> object:
        if isinstance(value, str):
            pairs = [p.strip().partition("=") for p in value.split(",") if p.strip()]
            if any(not sep or not days.strip().isdigit() for _, sep, days in pairs):
                raise ValueError(f"KIZUNA_CRM_SLA_DAYS {value!r}: write rank=days pairs, e.g. 'A=1,B=2,C=5'")
            return {rank.strip(): int(days) for rank, _, days in pairs}
        return value

    @field_validator("sendgrid_api_key")
    @classmethod
    def _strip_api_key(cls, value: SecretStr | None) -> SecretStr | None:
        # A key pasted with a trailing newline (echo >> .env) is the same key; every reader gets it stripped.
        return SecretStr(value.get_secret_value().strip()) if value is not None else None

    def unsubscribe_secret_problem(self) -> str | None:
        """Why unsubscribe links signed with KIZUNA_UNSUBSCRIBE_SECRET could be forged; None when they cannot.

        Real backends refuse to start on it (the outbox, for demos, does not): with the public default anyone
        can make a valid unsubscribe link for any contact and opt them out.
        """
        secret = self.unsubscribe_secret.get_secret_value()
        if secret == DEMO_UNSUBSCRIBE_SECRET:
            what = "is the public demo default"
        elif len(secret.strip()) < MIN_UNSUBSCRIBE_SECRET_LENGTH:
            what = f"is shorter than {MIN_UNSUBSCRIBE_SECRET_LENGTH} characters"
        else:
            return None
        return (
            f"KIZUNA_UNSUBSCRIBE_SECRET {what}: anyone could forge unsubscribe links, so kizuna sends no real "
            "email with it; set a long random value of your own, e.g. from "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` (keep it: changing it voids the links "
            "in mail already sent)"
        )

    @field_validator("sender_name", "sender_email", "sender_postal_address", "sender_contact")
    @classmethod
    def _identity_present(cls, value: str) -> str:
        # Japan's Act on Specified Electronic Mail requires the sender's identity in every advertising email.
        if not value.strip():
            raise ValueError("must not be empty: every email shows the sender's name, address and contact")
        return value

    def checkout_problem(self) -> str | None:
        """Why project_dir is not a kizuna checkout a pipeline step can run from (None when it is)."""
        missing = [pattern for pattern in CHECKOUT_FILES if not any(self.project_dir.glob(pattern))]
        if not missing:
            return None
        return (
            f"KIZUNA_PROJECT_DIR: {self.project_dir} is not a kizuna checkout (it has no {' and no '.join(missing)}); "
            "set it to the folder holding dbt_project/ and expectations/, or unset it"
        )

    def require_checkout(self) -> None:
        """Raise ProjectDirError unless project_dir holds what the pipeline's steps read (CHECKOUT_FILES)."""
        problem = self.checkout_problem()
        if problem:
            raise ProjectDirError(problem)

    @property
    def warehouse_target(self) -> Path | str:
        """What kizuna.core.connection.connect opens: the server's URL (password included) or the DuckDB file."""
        return self.warehouse_url.get_secret_value() if self.warehouse_url else self.warehouse

    @property
    def warehouse_label(self) -> str:
        """The warehouse as outputs, logs and messages name it: the file, or the server's URL without password."""
        return without_password(self.warehouse_url.get_secret_value()) if self.warehouse_url else str(self.warehouse)

    @property
    def warehouse_missing(self) -> bool:
        """Whether no warehouse exists yet to read: the DuckDB file is not there (a server's database is)."""
        return self.warehouse_url is None and not self.warehouse.exists()

    @property
    def warehouse_parameter(self) -> str | None:
        """The warehouse as a flow parameter may carry it: the file's path; None for a server (its URL is secret,
        and the flow's own settings read it from KIZUNA_WAREHOUSE_URL)."""
        return None if self.warehouse_url else str(self.warehouse)

    @property
    def dbt_project_dir(self) -> Path:
        return self.project_dir / "dbt_project"

    @property
    def templates_dir(self) -> Path:
        return self.project_dir / "templates"

    @property
    def campaigns_dir(self) -> Path:
        return self.campaigns_dir_setting or self.project_dir / "campaigns"

    @property
    def mappings_dir(self) -> Path:
        """Shipped header mappings for CRM and SFA exports (docs/sources.md)."""
        return self.project_dir / "mappings"

    @property
    def expectations_dir(self) -> Path:
        return self.project_dir / "expectations"

    @property
    def tmp_dir(self) -> Path:
        return self.var_dir / "tmp"

    @property
    def models_dir(self) -> Path:
        """Trained score models, one directory per version, and current.json (docs/scores.md)."""
        return self.var_dir / "models"


def is_server_url(target: Path | str) -> bool:
    """Whether a warehouse setting names a PostgreSQL server (postgresql://…) rather than a DuckDB file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def without_password(url: str) -> str:
    """A server URL as it may be shown: postgresql://user@host:5432/db (no password, no query string)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = (f"{parts.username}@" if parts.username else "") + (f"[{host}]" if ":" in host else host)
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc += f":{port}" if port else ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@")


def passwords_masked(text: str) -> str:
    """Text with every URL's password taken out (scheme://user:secret@host → scheme://user@host)."""
    return _URL_PASSWORD.sub(r"\1@", text)


def settings_with(
    *,
    source_dir: Path | str | None = None,
    warehouse: Path | str | None = None,
    full_refresh: bool = False,
    **more: object,
) -> Settings:
    """Settings from KIZUNA_* with a command's or a flow's explicit values on top (None and '' leave a setting be).

    The one place the CLI and the flows turn their parameters into settings, so both read them alike.
    """
    overrides: dict[str, object] = {k: v for k, v in more.items() if v is not None and v != ""}
    if full_refresh:
        overrides["full_refresh"] = True
    if source_dir:
        overrides["source_dir"] = Path(source_dir)
    if warehouse and is_server_url(str(warehouse)):
        overrides["warehouse_url"] = SecretStr(str(warehouse))
    elif warehouse:  # an explicit file wins over a server named by KIZUNA_WAREHOUSE_URL
        overrides["warehouse"] = Path(warehouse)
        overrides["warehouse_url"] = None
    return Settings(**overrides)  # type: ignore[arg-type]
