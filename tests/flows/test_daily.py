"""The daily flow end to end on a small demo set: loads, gates, builds, sends once, and stops on bad input."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from kizuna.core.errors import SourceContractError
from kizuna.core.settings import Settings, settings_with
from kizuna.core.warehouse import connect
from kizuna.demo.generate import generate_demo_data
from kizuna.quality.gate import GateFailedError
from kizuna.reporting.summary import RunSummary
from tests.postgres_server import PostgresServer
from tests.sources.test_ingest import raw_fingerprint

AS_OF = dt.date(2026, 11, 23)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate_demo_data(out, customers=400, seed=7, as_of=AS_OF)
    return out


@dataclass(frozen=True)
class GoodRun:
    """A workspace after one good daily run (root/src, root/var, root/warehouse.duckdb) and that run's summary."""

    root: Path
    summary: RunSummary

    def copy(self, to: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
        """The workspace copied to `to`, the environment pointed at it: a test may break or rerun it."""
        shutil.copytree(self.root, to)
        monkeypatch.setenv("KIZUNA_VAR_DIR", str(to / "var"))
        monkeypatch.setenv("KIZUNA_OUTBOX_DIR", str(to / "var" / "outbox"))
        return Settings(source_dir=to / "src", warehouse=to / "warehouse.duckdb")


def marts_fingerprint(settings: Settings) -> tuple:
    with connect(settings.warehouse) as con:
        return con.execute(
            "SELECT (SELECT count(*) FROM marts.customers), (SELECT sum(current_mrr) FROM marts.customers), "
            "(SELECT count(*) FROM marts.customer_mrr_monthly), (SELECT sum(ending_mrr) FROM marts.mrr_kpis_monthly)"
        ).fetchone()


def outbox_files(settings: Settings) -> list[Path]:
    return sorted(settings.outbox_dir.glob("*.eml"))


def test_daily_runs_end_to_end_and_a_rerun_sends_nothing_twice(
    good_run: GoodRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The module's one good run, then the same day again on a copy of its workspace."""
    from flows.daily import daily

    s = good_run.copy(tmp_path / "ws", monkeypatch)
    summary = good_run.summary

    with connect(s.warehouse) as con:
        raw_customers = con.execute("SELECT count(*) FROM raw.customers").fetchone()[0]
        kpi_months = con.execute("SELECT count(*) FROM marts.mrr_kpis_monthly").fetchone()[0]
        ledger = dict(
            con.execute(
                "SELECT state, count(*) FROM ops.send_ledger WHERE campaign = 'renewal_reminder' GROUP BY 1"
            ).fetchall()
        )
        selected_keys = {
            r[0]
            for r in con.execute(
                "SELECT message_key FROM ops.campaign_recipients WHERE is_selected AND campaign = 'renewal_reminder'"
            ).fetchall()
        }
        unstamped = con.execute("SELECT count(*) FROM ops.send_ledger WHERE flow_run_id IS NULL").fetchone()[0]
    assert summary.rows_loaded["customers"] == raw_customers == 400
    assert summary.checks_passed > 0 and summary.models_built >= 10 and summary.tests_passed > 50
    assert kpi_months > 12
    assert summary.kpis["month"] == dt.date(2026, 10, 1)
    assert summary.kpi_months[-1]["month"] == dt.date(2026, 10, 1) and len(summary.kpi_months) == 12
    [renewal] = [c for c in summary.campaigns if c.campaign == "renewal_reminder"]
    assert renewal.selected > 0
    assert renewal.sent == renewal.selected == ledger["accepted"] == len(selected_keys)
    assert len(outbox_files(s)) == sum(c.sent for c in summary.campaigns)
    assert summary.sends_by_state["renewal_reminder"]["accepted"] == renewal.sent
    assert summary.flow_run_id and unstamped == 0, "every ledger row names the flow run that wrote it"
    markdown = summary.to_markdown()
    assert "renewal_reminder" in markdown and "## Sends by state" in markdown

    first_files = {p.name: p.read_bytes() for p in outbox_files(s)}
    again = daily(source_dir=str(s.source_dir), warehouse=str(s.warehouse), as_of=AS_OF)
    [renewal2] = [c for c in again.campaigns if c.campaign == "renewal_reminder"]
    assert renewal2.sent == 0 and renewal2.selected == 0
    assert renewal2.excluded["already_sent"] == renewal.sent
    assert {p.name: p.read_bytes() for p in outbox_files(s)} == first_files


def _duplicate_customer(src: Path) -> None:
    path = src / "customers.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join([*lines, lines[1]]), encoding="utf-8")


def _bad_start_date(src: Path) -> None:
    path = src / "subscriptions.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].strip().split(",")
    col = header.index("start_date")
    fields = lines[5].rstrip("\r\n").split(",")
    fields[col] = "2026-02-30"
    lines[5] = ",".join(fields) + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def _missing_column(src: Path) -> None:
    path = src / "subscriptions.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    col = lines[0].strip().split(",").index("customer_id")
    path.write_text(
        "".join(",".join(f for i, f in enumerate(line.rstrip("\r\n").split(",")) if i != col) + "\n" for line in lines),
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def good_run(prefect_harness: None, demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> GoodRun:
    """One good daily run; the end-to-end test asserts on it, the others copy it instead of running dbt again."""
    from flows.daily import daily

    root = tmp_path_factory.mktemp("good-run")
    shutil.copytree(demo_dir, root / "src")
    with pytest.MonkeyPatch.context() as mp:
        # dbt in its one dbt-build task, as `kizuna run` builds (≈ 30 s less than a Prefect task per dbt node); the
        # node tasks, and the counts read back from them, are tests/flows/test_support.py's.
        mp.setenv("KIZUNA_DBT_NODE_TASKS", "never")
        mp.setenv("KIZUNA_VAR_DIR", str(root / "var"))
        mp.setenv("KIZUNA_OUTBOX_DIR", str(root / "var" / "outbox"))
        summary = daily(source_dir=str(root / "src"), warehouse=str(root / "warehouse.duckdb"), as_of=AS_OF)
    return GoodRun(root, summary)


def test_the_campaigns_flow_on_its_own_sends_nothing_the_daily_run_sent(
    good_run: GoodRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the `campaigns` deployment does after the day's run: a run id of its own, no message sent twice."""
    from flows.campaigns import campaigns

    s = good_run.copy(tmp_path / "ws", monkeypatch)
    sent_before = outbox_files(s)

    results = campaigns(warehouse=str(s.warehouse), as_of=AS_OF)

    [renewal] = [c for c in results if c.campaign == "renewal_reminder"]
    assert renewal.sent == 0 and renewal.excluded["already_sent"] > 0
    assert outbox_files(s) == sent_before
    with connect(s.warehouse) as con:
        unstamped = con.execute("SELECT count(*) FROM ops.send_ledger WHERE flow_run_id IS NULL").fetchone()[0]
    assert unstamped == 0


@pytest.mark.parametrize(
    ("break_it", "error", "message"),
    [
        (_duplicate_customer, GateFailedError, r"customers.csv, row 402, column customer_id: duplicate value"),
        (_bad_start_date, SourceContractError, r"subscriptions.csv, row 6, column start_date: is not a date"),
        (_missing_column, SourceContractError, r"subscriptions.csv, row 1, column customer_id: required column"),
    ],
    ids=["duplicate-customer-id", "start-date-not-a-date", "missing-required-column"],
)
def test_bad_input_stops_before_dbt_and_nothing_changes(
    good_run: GoodRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, break_it, error, message
) -> None:
    from flows.daily import daily

    s = good_run.copy(tmp_path / "ws", monkeypatch)
    assert outbox_files(s), "the good run sent something, so 'nothing more was sent' means something"
    raw_before, marts_before, sent_before = raw_fingerprint(s), marts_fingerprint(s), outbox_files(s)

    break_it(s.source_dir)
    with pytest.raises(error, match=message):
        daily(source_dir=str(s.source_dir), warehouse=str(s.warehouse), as_of=AS_OF + dt.timedelta(days=1))

    assert raw_fingerprint(s) == raw_before
    assert marts_fingerprint(s) == marts_before
    assert outbox_files(s) == sent_before


@pytest.mark.parametrize("as_of", ["notadate", "2026-02-30"], ids=["not-a-date", "no-such-day"])
def test_a_run_asked_for_an_as_of_that_is_not_a_date_fails_at_once_saying_so(
    prefect_harness: None, tmp_path: Path, as_of: str
) -> None:
    """What a deployment run with parameters {"as_of": "notadate"} does when the worker starts it."""
    from flows.daily import daily

    state = daily(
        source_dir=str(tmp_path), warehouse=str(tmp_path / "warehouse.duckdb"), as_of=as_of, return_state=True
    )

    assert state.is_failed()
    assert f"as_of {as_of!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-23" in str(state.message)
    assert not (tmp_path / "warehouse.duckdb").exists(), "refused before any step ran"


def test_the_deployment_parameter_schema_refuses_an_as_of_that_is_not_a_date() -> None:
    """The server checks a run's parameters against this schema (enforce_parameter_schema) as Prefect does here."""
    from prefect.utilities.schema_tools.validation import ValidationError, validate

    from flows.daily import daily

    schema = daily.parameters.model_dump()
    for good in ("2026-11-23", None):
        validate({"as_of": good}, schema, raise_on_error=True)
    with pytest.raises(ValidationError, match="as_of"):
        validate({"as_of": "notadate"}, schema, raise_on_error=True)


# The marts compared between the DuckDB run and the PostgreSQL run, with the columns that make their rows unique.
COMPARED_MARTS = {
    "mrr_kpis_monthly": ["month"],
    "customer_mrr_monthly": ["customer_id", "month"],
    "customers": ["customer_id"],
    "customer_signals": ["customer_id", "signal"],
    "inside_sales_kpis_monthly": ["month"],
    "subscription_renewals": ["subscription_id"],
    "customer_scores": ["customer_id"],
    "cohort_retention_monthly": ["cohort_month", "month"],
}
# Marts the scores step writes, not dbt.
SCORES = ("customer_scores",)
# Columns that say when each run wrote a row, not what it computed.
RUN_TIMES = ["scored_at"]
# Any password: the suite's server trusts its user; the run must never write it anywhere.
SERVER_PASSWORD = "pw-never-shown-8832"


def test_the_daily_run_on_a_postgresql_warehouse_gives_the_same_summary_and_marts(
    good_run: GoodRun, postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kizuna run --warehouse postgresql://…` (the CLI hands the URL to the flow through KIZUNA_WAREHOUSE_URL,
    never as a parameter): the same sources as the module's DuckDB run, the same day, the same outcome."""
    from flows.daily import daily
    from tests.dbt.helpers import normalised

    postgres_server.create_database("daily_run")
    url = postgres_server.url("daily_run", password=SERVER_PASSWORD)
    shutil.copytree(good_run.root / "src", tmp_path / "src")
    monkeypatch.setenv("KIZUNA_DBT_NODE_TASKS", "never")
    monkeypatch.setenv("KIZUNA_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("KIZUNA_OUTBOX_DIR", str(tmp_path / "var" / "outbox"))
    monkeypatch.setenv("KIZUNA_WAREHOUSE_URL", url)
    summary = daily(source_dir=str(tmp_path / "src"), warehouse=None, as_of=AS_OF)

    duck = good_run.summary
    assert summary.warehouse == url.replace(f":{SERVER_PASSWORD}", "")
    for field in ("rows_loaded", "checks_passed", "checks_failed_warning", "quarantined", "normalised", "kpis"):
        assert getattr(summary, field) == getattr(duck, field), field
    assert summary.models_built == duck.models_built and summary.kpi_months == duck.kpi_months

    def rows(run: RunSummary, root: Path) -> list[dict[str, object]]:  # notes name each run's own call list files
        return [{**r, "note": str(r["note"]).replace(str(root), "<root>")} for r in run.campaign_rows()]

    assert rows(summary, tmp_path) == rows(duck, good_run.root)
    assert summary.sends_by_state == duck.sends_by_state and sum(c.sent for c in summary.campaigns) > 0
    assert len(outbox_files(Settings(outbox_dir=tmp_path / "var" / "outbox"))) == len(
        outbox_files(Settings(outbox_dir=good_run.root / "var" / "outbox"))
    )

    with connect(url, read_only=True) as pg, connect(good_run.root / "warehouse.duckdb", read_only=True) as dk:
        for mart, keys in COMPARED_MARTS.items():
            on_duckdb, on_postgres = (
                c.execute(f"SELECT * FROM marts.{mart}").df().drop(columns=RUN_TIMES, errors="ignore") for c in (dk, pg)
            )
            assert len(on_duckdb) > 0, f"{mart} is empty: the comparison would prove nothing"
            assert list(on_postgres.columns) == list(on_duckdb.columns), mart
            pd.testing.assert_frame_equal(
                normalised(on_postgres, keys), normalised(on_duckdb, keys), check_dtype=False, rtol=1e-6, obj=mart
            )

    # The next day on the same server (raw published, dbt's views on it), as a user runs it: `kizuna run
    # --warehouse postgresql://…` in its own process (on the session's Prefect server). Loads, builds, and sends
    # no message twice.
    from prefect.settings import PREFECT_API_URL

    from kizuna.demo.next_day import next_day_demo_data
    from tests.ops.conftest import base_env, tool

    day2, _ = next_day_demo_data(tmp_path / "src", tmp_path / "day2", seed=8)
    done = subprocess.run(
        [tool("python"), "-m", "kizuna.cli", "run", "--warehouse", url, "--as-of", day2.isoformat()],
        env=base_env(
            KIZUNA_SOURCE_DIR=str(tmp_path / "day2"),
            KIZUNA_VAR_DIR=str(tmp_path / "var"),
            KIZUNA_OUTBOX_DIR=str(tmp_path / "var" / "outbox"),
            KIZUNA_DBT_NODE_TASKS="never",
            PREFECT_API_URL=str(PREFECT_API_URL.value()),
        ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout
    assert f"- warehouse: {summary.warehouse}\n" in done.stdout and SERVER_PASSWORD not in done.stdout
    assert "- dbt build\n" in done.stdout and f"{summary.models_built} models built" in done.stdout
    with connect(url, read_only=True) as pg:
        assert pg.execute("SELECT count(DISTINCT load_id) FROM ops.loads").fetchone() == (2,)
        assert pg.execute("SELECT max(as_of) FROM ops.campaign_recipients").fetchone() == (day2,)
        twice = "SELECT count(*) FROM (SELECT contact_id FROM ops.send_ledger GROUP BY campaign, contact_id, occasion "
        assert pg.execute(twice + "HAVING count(*) > 1) AS sent_twice").fetchone() == (0,)
        incremental = {m: pg.execute(f"SELECT * FROM marts.{m}").df() for m in COMPARED_MARTS if m not in SCORES}

    # Day 2's incremental build on the server equals a full refresh of the same day.
    assert "- incremental models: rebuilt from " in done.stdout, done.stdout
    from kizuna import pipeline

    pipeline.build(settings_with(warehouse=url, full_refresh=True), day2)
    with connect(url, read_only=True) as pg:
        for mart, frame in incremental.items():
            rebuilt = pg.execute(f"SELECT * FROM marts.{mart}").df()
            keys = COMPARED_MARTS[mart]
            pd.testing.assert_frame_equal(normalised(frame, keys), normalised(rebuilt, keys), obj=f"{mart} on day 2")

    written = [p for p in (tmp_path / "var").rglob("*") if p.is_file()]
    assert written and not [p for p in written if SERVER_PASSWORD.encode() in p.read_bytes()]
