"""Fixtures for campaign tests. Delivery fixtures are prefixed sg_: small marts built by SQL, settings for a stand-in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from kizuna.core.settings import Settings
from tests.conftest import record_passing_gate
from tests.standins.sendgrid_server import SendGridStandin, sendgrid_standin  # noqa: F401 (a fixture)

SG_AS_OF = dt.date(2026, 11, 23)
SG_API_KEY = "SG.test-key-abcdefghijkl.mnopqrstuvwxyz0123456789"
SG_UNSUBSCRIBE_SECRET = "test-unsubscribe-secret-not-the-demo-default"

SgWarehouse = Callable[..., Path]


def record_passing_build(con: duckdb.DuckDBPyConnection, as_of: dt.date = SG_AS_OF) -> None:
    """Mark the marts as built by a passing dbt build, as a daily run leaves them: campaigns refuse otherwise."""
    from kizuna.transform import builds

    builds.finish(con, builds.start(con, as_of), passed=True)


@pytest.fixture
def sg_make_warehouse(tmp_path: Path) -> SgWarehouse:
    """A DuckDB file with the three marts selection reads (as dbt would leave them), ``customers`` rows each
    renewing within 60 days with one opted-in primary contact; ``names`` overrides customer names by index."""

    def make(customers: int, *, names: dict[int, str] | None = None, products: dict[int, str] | None = None) -> Path:
        path = tmp_path / "warehouse.duckdb"
        con = duckdb.connect(str(path))
        try:
            con.execute("CREATE SCHEMA marts")
            record_passing_gate(con)
            record_passing_build(con)
            con.execute(
                """
                CREATE TABLE marts.customers AS
                SELECT printf('C-%06d', i) AS customer_id, printf('株式会社テスト%d', i) AS name,
                       'owner@kizuna.example.jp' AS owner_email, 'active' AS status, 24::BIGINT AS tenure_months,
                       80000::DECIMAL(18,2) AS current_mrr, 12 AS contract_term_months
                FROM range(?) t(i)""",
                [customers],
            )
            con.execute(
                """
                CREATE TABLE marts.contacts AS
                SELECT printf('P-%06d', i) AS contact_id, printf('C-%06d', i) AS customer_id,
                       printf('山田 %d', i) AS contact_name, 'owner' AS role, true AS is_primary,
                       true AS is_marketing_opted_in, 'ja' AS locale, printf('c%06d@kunde.example.jp', i) AS email
                FROM range(?) t(i)""",
                [customers],
            )
            con.execute(
                """
                CREATE TABLE marts.subscription_renewals AS
                SELECT printf('S-%06d', i) AS subscription_id, printf('C-%06d', i) AS customer_id,
                       'Kizuna Analytics' AS product, 'Business' AS plan, 'active' AS status,
                       80000::DECIMAL(18,2) AS mrr, 'JPY' AS currency, 12 AS contract_term_months,
                       ?::DATE + 10 + (i % 40)::INTEGER AS renewal_on, 10 + (i % 40) AS days_to_renewal
                FROM range(?) t(i)""",
                [SG_AS_OF, customers],
            )
            for index, name in (names or {}).items():
                con.execute(
                    "UPDATE marts.customers SET name = ? WHERE customer_id = printf('C-%06d', ?)", [name, index]
                )
            for index, product in (products or {}).items():
                con.execute(
                    "UPDATE marts.subscription_renewals SET product = ? WHERE customer_id = printf('C-%06d', ?)",
                    [product, index],
                )
        finally:
            con.close()
        return path

    return make


@pytest.fixture
def sg_settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings sending to the stand-in: a timeout short of its 5 s hang (long enough for a loaded machine),
    small batches, no rate limit."""
    standin: SendGridStandin = request.getfixturevalue("sendgrid_standin")
    return Settings(
        warehouse=tmp_path / "warehouse.duckdb",
        var_dir=tmp_path / "var",
        outbox_dir=tmp_path / "var" / "outbox",
        email_backend="sendgrid",
        sendgrid_api_key=SG_API_KEY,  # type: ignore[arg-type]
        sendgrid_api_host=standin.host,
        sendgrid_timeout_seconds=2.0,
        sendgrid_max_rate_limit_wait_seconds=3,
        send_concurrency=8,
        send_rate_per_second=0,
        send_batch_size=20,
        approval_required="never",  # these tests are about delivery; holds have their own tests
        unsubscribe_secret=SG_UNSUBSCRIBE_SECRET,  # type: ignore[arg-type]  # sendgrid refuses the demo default
    )
