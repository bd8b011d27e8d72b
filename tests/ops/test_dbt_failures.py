"""A failed dbt data test is reported in plain words: table, column, rule and example rows, not a test id."""

from __future__ import annotations

import pytest

from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect, publish_incoming, staged_load_id
from kizuna.sources.ingest import stage_sources
from kizuna.transform import dbt_runner
from tests.conftest import write_csv
from tests.ops.conftest import AS_OF


def test_a_failed_dbt_test_names_table_column_rule_and_example_rows(settings: Settings) -> None:
    src = settings.source_dir
    write_csv(src / "customers.csv", ["customer_id", "name"], [["C001", "株式会社あおば"], ["C002", "Blue Sky KK"]])
    write_csv(
        src / "subscriptions.csv",
        ["subscription_id", "customer_id", "start_date", "end_date", "mrr", "status"],
        [
            ["S1", "C001", "2025-01-01", "", 50000, "active"],
            ["S2", "C999", "2025-02-01", "", 30000, "active"],
            ["S3", "C999", "2025-03-01", "", 30000, "active"],
            ["S4", "C002", "2025-06-01", "2025-04-01", 10000, "canceled"],
        ],
    )
    # Published without the gate (it would hold these rows back): a dbt test is the last line for what slips past
    # it, such as a suite edited too loosely or a model that joins wrongly.
    stage_sources(settings)
    with connect(settings.warehouse) as con:
        load_id = staged_load_id(con)
        assert load_id
        publish_incoming(con, load_id)

    with pytest.raises(dbt_runner.DbtBuildError) as caught:
        dbt_runner.build(settings, AS_OF, select="stg_billing__subscriptions stg_crm__customers")

    message = str(caught.value)
    assert "subscriptions: 2 rows have a customer_id that is not in customers" in message
    assert "e.g. customer_id C999" in message
    assert "subscriptions: 1 row breaks the rule end_date is null or end_date >= start_date" in message
    assert "e.g. subscription_id S4, customer_id C002" in message
    assert "relationships_stg_billing" not in message and "test.kizuna" not in message, "no test ids"


@pytest.mark.parametrize(
    ("kind", "column", "kwargs", "failures", "words"),
    [
        ("not_null", "is_paused", {}, 2980, "2,980 rows have no paused flag"),
        ("not_null", "customer_id", {}, 1, "1 row has no customer_id"),
        ("unique", "invoice_id", {}, 3, "3 values of invoice_id appear on more than one row (duplicate value)"),
        (
            "accepted_values",
            "locale",
            {"values": ["ja", "en"]},
            1,
            "1 unexpected value of locale (accepted: ja, en)",
        ),
        (
            "unique_combination_of_columns",
            None,
            {"combination_of_columns": ["customer_id", "month"]},
            4,
            "4 combinations of (customer_id, month) appear on more than one row",
        ),
    ],
    ids=["not-null-flag", "not-null-one-row", "unique", "accepted-values", "unique-combination"],
)
def test_each_kind_of_dbt_test_has_its_words(
    kind: str, column: str | None, kwargs: dict[str, object], failures: int, words: str
) -> None:
    from kizuna.transform.dbt_failures import rule_text

    assert rule_text(kind, column, kwargs, failures) == words
