"""The Telco sample adapter on hand-written rows shaped like the wheel's train.csv (no network)."""

from __future__ import annotations

import datetime as dt

import pytest

from bench.scores.telco import TELCO_COLUMNS, read_telco_csv, telco_to_sources, write_sources
from kizuna.core.errors import SourceContractError
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.sources.ingest import stage_sources

CHURN_MONTH = dt.date(2026, 6, 1)
HEADER = ",".join(TELCO_COLUMNS)
# id, gender, senior, partner, dependents, tenure, phone, lines, internet, security, backup, protection, support,
# tv, movies, contract, paperless, payment, monthly, total, churn
ROWS = [
    "7590-VHVEG,Female,0,Yes,No,1,No,No phone service,DSL,No,Yes,No,No,No,No,Month-to-month,Yes,"
    "Electronic check,29.85,29.85,No",
    "3668-QPYBK,Male,0,No,No,2,Yes,No,DSL,Yes,Yes,No,No,No,No,Month-to-month,Yes,Mailed check,53.85,108.15,Yes",
    "9237-HQITU,Female,0,No,No,2,Yes,No,Fiber optic,No,No,No,No,No,No,Month-to-month,Yes,Electronic check,"
    "70.70,151.65,Yes",
    "7795-CFOCW,Male,0,No,No,45,No,No phone service,DSL,Yes,No,Yes,Yes,No,No,One year,No,"
    "Bank transfer (automatic),42.30,1840.75,No",
    "1452-KIOVK,Male,0,No,Yes,22,Yes,Yes,Fiber optic,No,Yes,No,No,Yes,No,Month-to-month,Yes,"
    "Credit card (automatic),89.10,1949.4,No",
    "4472-LVYGI,Female,0,Yes,Yes,0,No,No phone service,DSL,Yes,No,Yes,Yes,Yes,No,Two year,Yes,"
    "Bank transfer (automatic),52.55, ,No",
    "3213-VVOLG,Male,0,Yes,Yes,72,Yes,Yes,No,No internet service,No internet service,No internet service,"
    "No internet service,No internet service,No internet service,Two year,No,Mailed check,25.35,1873.7,No",
]


def sample(*rows: str) -> bytes:
    return ("\n".join([HEADER.upper(), *rows]) + "\n").encode()


def test_rows_map_to_the_source_contract_and_pass_the_real_ingest(settings: Settings) -> None:
    rows = read_telco_csv(sample(*ROWS, ROWS[2]), "train.csv")  # a repeated row is dropped
    assert len(rows) == len(ROWS)
    sources = telco_to_sources(rows, CHURN_MONTH)
    customers, subscriptions = sources.customers, sources.subscriptions
    assert customers["customer_id"].tolist() == [r.split(",")[0] for r in ROWS]

    by_id = subscriptions.groupby("customer_id")
    # one subscription per service held; the bill split over them adds up to the monthly charges exactly
    assert by_id.size().to_dict() == {
        "7590-VHVEG": 2,  # Internet (DSL), Online backup
        "3668-QPYBK": 4,  # Phone, Internet, Online security, Online backup
        "9237-HQITU": 2,
        "7795-CFOCW": 4,
        "1452-KIOVK": 5,
        "4472-LVYGI": 5,
        "3213-VVOLG": 2,  # Phone, Multiple lines
    }
    totals = by_id["mrr"].apply(lambda m: round(sum(float(v) for v in m), 2)).to_dict()
    assert totals["9237-HQITU"] == 70.70 and totals["1452-KIOVK"] == 89.10 and totals["7590-VHVEG"] == 29.85
    fiber = subscriptions[subscriptions["customer_id"] == "9237-HQITU"].set_index("product")
    assert fiber.loc["Internet", "plan"] == "Fiber optic" and fiber.loc["Phone", "plan"] == ""

    first = subscriptions.drop_duplicates("customer_id").set_index("customer_id")
    # start = churn month minus tenure, for stayers and churners alike; churners end on the churn month
    assert first.loc["7795-CFOCW", "start_date"] == "2022-09-01"
    assert first.loc["3213-VVOLG", "start_date"] == "2020-06-01"
    assert first.loc["4472-LVYGI", "start_date"] == "2026-06-01"  # tenure 0: starts in the churn month
    assert first.loc["3668-QPYBK", ["end_date", "status"]].tolist() == ["2026-06-01", "canceled"]
    assert first.loc["7795-CFOCW", ["end_date", "status"]].tolist() == ["", "active"]
    assert first["contract_term_months"].to_dict() == {
        "7590-VHVEG": "1",
        "3668-QPYBK": "1",
        "9237-HQITU": "1",
        "7795-CFOCW": "12",
        "1452-KIOVK": "1",
        "4472-LVYGI": "24",
        "3213-VVOLG": "24",
    }
    assert set(subscriptions["currency"]) == {"USD"}

    hidden = telco_to_sources(rows, CHURN_MONTH, hide_outcomes=True).subscriptions
    assert (hidden["end_date"] == "").all() and (hidden["status"] == "active").all()
    same = [c for c in subscriptions.columns if c not in ("end_date", "status")]
    assert hidden[same].equals(subscriptions[same])

    write_sources(sources, settings.source_dir)
    stage_sources(settings)
    with connect(settings.warehouse, read_only=True) as con:
        staged = con.execute(
            "SELECT count(*), sum(mrr), count(end_date), min(start_date) FROM raw_incoming.subscriptions"
        ).fetchone()
        assert con.execute("SELECT count(*) FROM raw_incoming.customers").fetchone() == (len(ROWS),)
    assert staged is not None
    assert staged[0] == len(subscriptions) and float(staged[1]) == pytest.approx(
        29.85 + 53.85 + 70.70 + 42.30 + 89.10 + 52.55 + 25.35
    )
    assert staged[2] == 6 and staged[3] == dt.date(2020, 6, 1)  # 6 = the two churners' subscriptions


@pytest.mark.parametrize(
    ("rows", "where"),
    [
        ([ROWS[0].replace("Month-to-month", "Three year")], "train.csv, row 2, column contract: 'Three year'"),
        ([ROWS[0], ROWS[3].replace(",45,", ",4.5,")], "train.csv, row 3, column tenure: '4.5'"),
        ([ROWS[0], ROWS[1].replace("53.85", "")], "train.csv, row 3, column monthlycharges"),
        ([ROWS[0], ROWS[0].replace("29.85,29.85", "39.85,39.85")], "train.csv, row 3, column customerid: 7590-VHVEG"),
    ],
    ids=["unknown-contract", "fractional-tenure", "no-charges", "conflicting-repeat"],
)
def test_bad_rows_are_named_by_file_row_and_column(rows: list[str], where: str) -> None:
    with pytest.raises(SourceContractError, match=where.replace("(", r"\(")):
        read_telco_csv(sample(*rows), "train.csv")


def test_a_missing_column_is_named() -> None:
    data = sample(*ROWS[:1]).replace(b"PAPERLESSBILLING,", b"").replace(b"Yes,Electronic", b"Electronic")
    with pytest.raises(SourceContractError, match="row 1, column paperlessbilling: column missing"):
        read_telco_csv(data, "train.csv")
