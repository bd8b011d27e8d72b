"""The revenue and customer marts build on Spark (dbt-spark, a local session) and equal DuckDB's row for row.

One Spark session in this process for the module: dbt-spark's `method: session` takes the active session, so
the fixture starts it with a small footprint (local[1], no UI, one shuffle partition, in-memory catalog, warehouse
under tmp_path) and loads the sources as Parquet-backed tables. Only the compared marts and what they need are
built (`--select +mart`), with their unit tests (the half-cent rounding rule among them); data tests stay with
the DuckDB and PostgreSQL builds, which run all of them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from tests.dbt.helpers import NO_UNIT_TESTS, Build, load_source_dir, normalised, run_dbt

# pyspark warns about pandas 3 when it converts rows; the test builds its frames from collect() itself.
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")

AS_OF = date(2026, 11, 23)
DEMO_CUSTOMERS = 60

# Marts compared, with the columns that make their rows unique.
MARTS = {
    "mrr_kpis_monthly": ["month"],
    "customer_mrr_monthly": ["customer_id", "month"],
    "cohort_retention_monthly": ["cohort_month", "month"],
    "existing_customer_revenue_monthly": ["month", "breakdown", "band"],
    "inside_sales_kpis_monthly": ["month"],
    "inside_sales_kpis_monthly_by_owner": ["month", "owner_email"],
    "subscription_renewals": ["subscription_id"],
    "customers": ["customer_id"],
    "customer_signals": ["customer_id", "signal"],
    "contacts": ["contact_id"],
}
# The marts and everything they need, with the marts' own unit tests (the half-cent rounding rule among them) and
# the context JSON's (staging/campaigns). The other upstream unit tests and the data tests run on DuckDB and
# PostgreSQL; on Spark each query costs about a second.
SELECTION = (
    "--select",
    *(f"+{mart}" for mart in MARTS),
    "--exclude",
    "test_type:data",
    "test_type:unit,path:models/staging/billing",
    "test_type:unit,path:models/intermediate",
)

PROFILE = """\
kizuna:
  target: spark
  outputs:
    spark:
      type: spark
      method: session
      host: NA
      schema: main
      threads: 1
"""


def spark_session(workdir: Path) -> Any:
    """A local Spark session as small as the comparison allows (the JVM starts here, once)."""
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[1]")
        .appName("kizuna-dbt-portability")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .config("spark.sql.adaptive.enabled", "false")
        # Tiny data, many small queries: interpreting them costs less than generating and compiling code.
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
        .config("spark.sql.catalogImplementation", "in-memory")
        .config("spark.sql.warehouse.dir", str(workdir / "spark-warehouse"))
        .config("spark.local.dir", str(workdir / "spark-tmp"))
        .config(
            "spark.driver.extraJavaOptions",
            # C1 only and the serial collector: a short-lived JVM spends less CPU warming up
            f"-Duser.timezone=UTC -Djava.io.tmpdir={workdir / 'spark-tmp'} -XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        )
        .config("spark.sql.session.timeZone", "UTC")
        # DuckDB's TIMESTAMP is written as a local (not UTC-adjusted) Parquet timestamp: read it as TIMESTAMP,
        # the type every other timestamp of the project has on Spark, not TIMESTAMP_NTZ.
        .config("spark.sql.parquet.inferTimestampNTZ.enabled", "false")
        .getOrCreate()
    )


def copy_warehouse_to_spark(warehouse: Path, spark: Any, workdir: Path) -> None:
    """Every table of the raw and ops schemas as a Parquet-backed Spark table of the same schema and name."""
    duck = duckdb.connect(str(warehouse))
    try:
        tables = duck.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('raw', 'ops') ORDER BY 1, 2"
        ).fetchall()
        for schema, table in tables:
            path = workdir / "sources" / schema / f"{table}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            duck.execute(f"COPY (SELECT * FROM {schema}.\"{table}\") TO '{path}' (FORMAT parquet)")
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {schema}")
            spark.sql(f"CREATE TABLE {schema}.{table} USING parquet LOCATION '{path}'")
    finally:
        duck.close()


@dataclass
class Builds:
    duckdb: Build
    spark: Any


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Builds]:
    pytest.importorskip("pyspark", reason="pyspark is not installed (see pyproject.toml's dev extra)")
    pytest.importorskip("dbt.adapters.spark", reason="dbt-spark is not installed (see pyproject.toml's dev extra)")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime for Spark (make system-deps installs openjdk-17-jre-headless)")
    from kizuna.demo.generate import generate_demo_data

    workdir = tmp_path_factory.mktemp("dbt-spark")
    generate_demo_data(workdir / "src", DEMO_CUSTOMERS, 7, AS_OF)
    warehouse = workdir / "warehouse.duckdb"
    load_source_dir(warehouse, workdir / "src")
    # the same models on DuckDB, to compare; the unit tests are Spark's here (on DuckDB: tests/dbt/helpers.py)
    duck = Build(
        warehouse,
        run_dbt(workdir / "duck", AS_OF, {"KIZUNA_WAREHOUSE": str(warehouse)}, extra=(*SELECTION, *NO_UNIT_TESTS)),
    )

    spark = spark_session(workdir)
    try:
        copy_warehouse_to_spark(warehouse, spark, workdir)
        profiles = workdir / "profiles"
        profiles.mkdir()
        (profiles / "profiles.yml").write_text(PROFILE)
        run_dbt(workdir / "spark", AS_OF, {}, extra=SELECTION, profiles_dir=profiles)
        yield Builds(duck, spark)
    finally:
        spark.stop()


@pytest.mark.parametrize("mart", list(MARTS), ids=list(MARTS))
def test_mart_is_the_same_on_spark_and_duckdb(builds: Builds, mart: str) -> None:
    keys = MARTS[mart]
    on_duckdb = builds.duckdb.query(f"select * from marts.{mart}")
    # collect(), not toPandas(): pyspark's pandas conversion warns on pandas 3 and wants pyarrow
    result = builds.spark.sql(f"select * from marts.{mart}")
    on_spark = pd.DataFrame([row.asDict() for row in result.collect()], columns=result.columns)
    assert len(on_duckdb) > 0, f"{mart} is empty: the comparison would prove nothing"
    assert list(on_spark.columns) == list(on_duckdb.columns)
    pd.testing.assert_frame_equal(normalised(on_spark, keys), normalised(on_duckdb, keys), check_dtype=False, rtol=1e-9)


def test_money_and_shares_have_one_type_on_every_engine(builds: Builds) -> None:
    """The rounding rule's columns are decimal(18,2) and mrr_share_before a double, on Spark as on DuckDB."""
    types = {f.name: f.dataType.simpleString() for f in builds.spark.table("marts.customers").schema.fields}
    assert types["mrr_share_before"] == "double"
    assert types["mrr"] == "decimal(18,2)"
    arpa = {f.name: f.dataType.simpleString() for f in builds.spark.table("marts.mrr_kpis_monthly").schema.fields}
    assert arpa["arpa"] == "decimal(18,2)"
    on_duckdb = builds.duckdb.query(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'marts' and column_name in ('mrr_share_before', 'arpa')"
    )
    assert dict(zip(on_duckdb.column_name, on_duckdb.data_type, strict=True)) == {
        "mrr_share_before": "DOUBLE",
        "arpa": "DECIMAL(18,2)",
    }
