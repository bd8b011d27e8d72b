"""Start with the data you have: every optional file and column left out, one at a time and all together.

One pipeline run covers every case. Each case is a copy of a small demo company (its own customers, ids
prefixed `<case>~`) from which that case's optional file or column is left out; the copies are stacked into
one source directory and go through one ingest, gate and dbt build (models and data tests). A
column left out of a file and a column left blank in every row are the same thing once staged, which
`test_a_column_left_out_of_the_header_is_a_blank_column` checks case by case on the files themselves;
stacking saves ~45 dbt builds. Revenue marts are per customer, so each case's revenue can be compared with
the full copy's wherever the dropped data does not enter MRR.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from kizuna.core.contract import TABLES, TABLES_BY_NAME
from kizuna.core.settings import Settings
from kizuna.core.warehouse import INCOMING_SCHEMA, connect
from kizuna.demo.generate import generate_demo_data
from kizuna.quality.gate import gate_and_publish
from kizuna.sources.ingest import stage_sources
from kizuna.tracking.loader import ensure_tracking_tables
from kizuna.transform import dbt_runner

AS_OF = dt.date(2026, 11, 23)
DEMO_CUSTOMERS = 60
SEP = "~"  # between a case's prefix and the demo's id; no demo id holds it
# The price is required as a group (mrr, or amount with billing_period_months: docs/sources.md); the demo
# prices monthly plans by mrr and annual ones by amount, so none of the three can go. The minimal case of
# tests/sources/test_first_contact.py gives mrr alone.
PRICE = {("subscriptions", "mrr"), ("subscriptions", "amount"), ("subscriptions", "billing_period_months")}
# Data that enters MRR: dropping it may change revenue, so those cases only need to run.
ENTERS_MRR = {
    ("subscriptions", "end_date"),
    ("subscriptions", "currency"),
    ("subscriptions", "status"),
    ("invoices", None),  # past_due subscriptions are dated by their open invoices
    ("invoices", "subscription_id"),
    ("invoices", "status"),
}
# Keys rewritten per case, so the stacked copies never collide; emails too (contacts' addresses are unique).
ID_COLUMNS = {"customer_id", "contact_id", "subscription_id", "invoice_id", "deal_id", "activity_id", "ticket_id"}
# Rates are not per customer, so they cannot be stacked: the daily run in test_first_contact.py has no
# fx_rates file, and its fx tests give one with and without reporting_currency.
STACKED = [t for t in TABLES if t.name != "fx_rates"]


@dataclass(frozen=True)
class Case:
    id: str
    table: str | None  # None: everything optional at once
    column: str | None  # None with a table: the whole file

    def drops(self, table: str, column: str) -> bool:
        if self.table is None:
            return (table, column) not in PRICE and not TABLES_BY_NAME[table].column(column).required
        return self.table == table and self.column == column

    def drops_file(self, table: str) -> bool:
        if self.table is None:
            return not TABLES_BY_NAME[table].required
        return self.table == table and self.column is None

    @property
    def revenue_may_change(self) -> bool:
        return self.table is None or (self.table, self.column) in ENTERS_MRR


def cases() -> list[Case]:
    found = [Case("all-optional", None, None)]
    for table in STACKED:
        if not table.required:
            found.append(Case(f"no-{table.name}", table.name, None))
        found += [
            Case(f"{table.name}.{c.name}", table.name, c.name)
            for c in table.columns
            if not c.required and (table.name, c.name) not in PRICE
        ]
    return found


CASES = cases()
FULL = Case("full", "-", "-")


def read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def case_files(demo: Path, case: Case, *, blank: bool, prefix: bool) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The demo's files with the case's data left out: as blank cells, or gone from the header (and the
    directory) as a user leaves it out. With `prefix`, ids and emails are made the case's own."""
    mark = f"{case.id}{SEP}"
    out = {}
    for table in STACKED:
        path = demo / f"{table.name}.csv"
        if case.drops_file(table.name) or not path.exists():
            continue
        header, rows = read(path)
        dropped = {i for i, h in enumerate(header) if case.drops(table.name, h)}
        keep = [i for i in range(len(header)) if blank or i not in dropped]
        new_rows = []
        for row in rows:
            cells = []
            for i in keep:
                value = "" if i in dropped else row[i]
                if prefix and value and header[i] in ID_COLUMNS:
                    value = mark + value
                if prefix and value and header[i] == "email":
                    value = f"{case.id.replace('.', '-')}.{value}"
                cells.append(value)
            new_rows.append(cells)
        out[table.name] = ([header[i] for i in keep], new_rows)
    return out


def write(src: Path, files: dict[str, tuple[list[str], list[list[str]]]], append: bool = False) -> None:
    for name, (header, rows) in files.items():
        path = src / f"{name}.csv"
        new = not path.exists() or not append
        with path.open("w" if new else "a", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(header)
            writer.writerows(rows)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate_demo_data(out, customers=DEMO_CUSTOMERS, seed=11, as_of=AS_OF)
    return out


@dataclass
class StackedRun:
    settings: Settings
    error: BaseException | None


@pytest.fixture(scope="module")
def stacked_run(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> StackedRun:
    """The pipeline's own steps in-process (ingest, gate and publish, dbt build with its data tests): a
    Prefect daily run makes every dbt node a task run, minutes on 2 cores. The all-optional and minimal
    cases also go through the real daily flow in test_first_contact.py."""
    root = tmp_path_factory.mktemp("stacked")
    src = root / "src"
    src.mkdir()
    for i, case in enumerate([FULL, *CASES]):
        write(src, case_files(demo, case, blank=True, prefix=True), append=i > 0)
    settings = Settings(
        source_dir=src, warehouse=root / "warehouse.duckdb", var_dir=root / "var", outbox_dir=root / "outbox"
    )
    error = None
    try:
        stage_sources(settings)
        gate_and_publish(settings, AS_OF)
        with connect(settings.warehouse) as con:
            ensure_tracking_tables(con, settings.templates_dir)  # as the daily flow does before dbt
        dbt_runner.build(settings, AS_OF)
    except Exception as exc:  # every case reports it, by name
        error = exc
    return StackedRun(settings, error)


def revenue(settings: Settings, case: Case) -> list[tuple[object, ...]]:
    """The case's customer_mrr_monthly rows with the case prefix taken off the ids."""
    with connect(settings.warehouse, read_only=True) as con:
        return con.execute(
            "SELECT split_part(customer_id, ?, 2) AS customer_id, month, mrr, previous_mrr, movement, movement_mrr "
            "FROM marts.customer_mrr_monthly WHERE starts_with(customer_id, ?) ORDER BY 1, 2",
            [SEP, f"{case.id}{SEP}"],
        ).fetchall()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_pipeline_builds_without_it(stacked_run: StackedRun, case: Case) -> None:
    assert stacked_run.error is None, f"the pipeline failed: {stacked_run.error}"
    s = stacked_run.settings
    mark = f"{case.id}{SEP}"
    with connect(s.warehouse, read_only=True) as con:
        customers = con.execute(
            "SELECT count(*) FROM marts.customers WHERE starts_with(customer_id, ?)", [mark]
        ).fetchone()
        has_quarantine = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'quarantine'"
        ).fetchone()
        quarantined = (
            con.execute(
                "SELECT count(*) FROM quarantine.rows WHERE starts_with(json_extract_string(record, '$.customer_id'), ?)",
                [mark],
            ).fetchone()
            if has_quarantine and has_quarantine[0]
            else (0,)
        )
    assert customers == (DEMO_CUSTOMERS,)
    assert quarantined == (0,)
    full = revenue(s, FULL)
    mine = revenue(s, case)
    assert full, "the full copy has revenue"
    if case.revenue_may_change:
        assert mine, "the case still has revenue"
    else:
        assert mine == full


def staged_rows(settings: Settings, table: str) -> list[tuple[object, ...]]:
    with connect(settings.warehouse, read_only=True) as con:
        return con.execute(f"SELECT * FROM {INCOMING_SCHEMA}.{table} ORDER BY _source_row").fetchall()


@pytest.fixture(scope="module")
def full_staging(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[object, ...]]]:
    root = tmp_path_factory.mktemp("full")
    settings = Settings(source_dir=demo, warehouse=root / "w.duckdb", var_dir=root / "var")
    result = stage_sources(settings)
    return {s.table: staged_rows(settings, s.table) for s in result.staged}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_column_left_out_of_the_header_is_a_blank_column(
    demo: Path, full_staging: dict[str, list[tuple[object, ...]]], case: Case, tmp_path: Path
) -> None:
    """The stacked run blanks cells; a user leaves the column (or the file) out. Ingest must stage that as
    the full file with the column blank (or the table skipped), so the stacked run stands for it."""
    files = case_files(demo, case, blank=False, prefix=False)
    checked = [t.name for t in STACKED if case.table is None or t.required or t.name == case.table]
    src = tmp_path / "src"
    src.mkdir()
    write(src, {name: files[name] for name in checked if name in files})
    settings = Settings(source_dir=src, warehouse=tmp_path / "w.duckdb", var_dir=tmp_path / "var")
    result = stage_sources(settings)
    for name in checked:
        table = TABLES_BY_NAME[name]
        if case.drops_file(name):
            assert name in result.skipped
            continue
        blanked = [i for i, c in enumerate(table.columns) if case.drops(name, c.name)]
        expected = [tuple(None if i in blanked else v for i, v in enumerate(row)) for row in full_staging[name]]
        assert staged_rows(settings, name) == expected, name
