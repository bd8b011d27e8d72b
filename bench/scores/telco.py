"""The IBM Telco churn sample as kizuna source files, for the churn_risk benchmark on real data (docs/scores.md)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from kizuna.core.contract import TABLES
from kizuna.core.errors import Finding, SourceContractError

# The sample's header (lower case, as in the wheel's train.csv); the first column is the key.
TELCO_COLUMNS = (
    "customerid",
    "gender",
    "seniorcitizen",
    "partner",
    "dependents",
    "tenure",
    "phoneservice",
    "multiplelines",
    "internetservice",
    "onlinesecurity",
    "onlinebackup",
    "deviceprotection",
    "techsupport",
    "streamingtv",
    "streamingmovies",
    "contract",
    "paperlessbilling",
    "paymentmethod",
    "monthlycharges",
    "totalcharges",
    "churn",
)
CONTRACT_TERMS = {"Month-to-month": 1, "One year": 12, "Two year": 24}
INTERNET_PLANS = ("DSL", "Fiber optic")
# Service column -> product name. A service is held when its value is "Yes" (internetservice: DSL or Fiber
# optic, which becomes the plan); "No", "No phone service" and "No internet service" mean not held.
SERVICES = (
    ("phoneservice", "Phone"),
    ("multiplelines", "Multiple lines"),
    ("internetservice", "Internet"),
    ("onlinesecurity", "Online security"),
    ("onlinebackup", "Online backup"),
    ("deviceprotection", "Device protection"),
    ("techsupport", "Tech support"),
    ("streamingtv", "Streaming TV"),
    ("streamingmovies", "Streaming movies"),
)
ALLOWED = {
    "phoneservice": ("Yes", "No"),
    "multiplelines": ("Yes", "No", "No phone service"),
    "internetservice": (*INTERNET_PLANS, "No"),
    **{c: ("Yes", "No", "No internet service") for c, _ in SERVICES[3:]},
    "contract": tuple(CONTRACT_TERMS),
    "churn": ("Yes", "No"),
}
CURRENCY = "USD"
COUNTRY = "US"
MAX_FINDINGS = 20


@dataclass(frozen=True)
class TelcoSources:
    """The sample in the source contract: one customer each, one subscription per service held."""

    customers: pd.DataFrame
    subscriptions: pd.DataFrame
    churn_month: date


def read_telco_csv(data: bytes, file: str) -> pd.DataFrame:
    """The sample's rows as text, repeated rows dropped, every value checked; errors name file, row and column.

    Rows are numbered as a spreadsheet shows them (header = row 1). A customer id that appears twice with
    different values is an error: which row is true cannot be told.
    """
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in TELCO_COLUMNS if c not in frame.columns]
    if missing:
        raise SourceContractError([Finding(file, 1, c, "column missing from the header") for c in missing])
    frame = frame.loc[:, list(TELCO_COLUMNS)].apply(lambda column: column.str.strip())
    frame.insert(0, "source_row", range(2, len(frame) + 2))
    frame = frame.drop_duplicates(subset=list(TELCO_COLUMNS)).reset_index(drop=True)
    findings = _check(frame, file)
    if findings:
        raise SourceContractError(findings[:MAX_FINDINGS], total=len(findings))
    return frame


def _check(frame: pd.DataFrame, file: str) -> list[Finding]:
    findings: list[Finding] = []
    for row in frame.itertuples(index=False):
        values = row._asdict()
        where = int(values["source_row"])
        if not values["customerid"]:
            findings.append(Finding(file, where, "customerid", "empty"))
        for column, allowed in ALLOWED.items():
            if values[column] not in allowed:
                findings.append(Finding(file, where, column, f"{values[column]!r} is not one of {', '.join(allowed)}"))
        tenure = values["tenure"]
        if not tenure.isdigit():
            findings.append(Finding(file, where, "tenure", f"{tenure!r} is not a whole number of months"))
        try:
            charges = float(values["monthlycharges"])
        except ValueError:
            charges = -1.0
        if not charges > 0:
            findings.append(
                Finding(file, where, "monthlycharges", f"{values['monthlycharges']!r} is not an amount > 0")
            )
        if all(values[c] in ("No", "No phone service", "No internet service") for c, _ in SERVICES):
            findings.append(Finding(file, where, "phoneservice", "the customer holds no service"))
    repeated = frame[frame["customerid"].duplicated(keep=False) & (frame["customerid"] != "")]
    for customer_id, rows in repeated.groupby("customerid", sort=False):
        numbers = ", ".join(str(r) for r in rows["source_row"])
        findings.append(
            Finding(
                file, int(rows["source_row"].iloc[1]), "customerid", f"{customer_id} has different rows ({numbers})"
            )
        )
    return findings


def _months_before(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _split_cents(total: float, parts: int) -> list[str]:
    """The bill split evenly over the services, first ones taking the odd cents: the parts add up exactly."""
    cents = round(total * 100)
    base, odd = divmod(cents, parts)
    return [f"{(base + (1 if i < odd else 0)) / 100:.2f}" for i in range(parts)]


def telco_to_sources(rows: pd.DataFrame, churn_month: date, *, hide_outcomes: bool = False) -> TelcoSources:
    """Map the sample to customers and subscriptions, every customer anchored to the same month.

    The sample is one cross-section: stayers were still customers at its extraction, churners left within its
    last month. Both get start_date = churn_month - tenure months (tenure counts the months paid up to that
    point for both), so features on churn_month's first day see `tenure` whole paid months either way. A
    churner's subscriptions end on churn_month's first day (exclusive: the last paid month is the one before)
    with status canceled; a stayer's are open-ended and active. hide_outcomes writes everyone as a stayer:
    features built from that must equal the real ones, which proves no outcome reaches them.
    """
    if churn_month.day != 1:
        raise ValueError(f"churn_month must be the first day of a month, got {churn_month}")
    customers, subscriptions = [], []
    for row in rows.itertuples(index=False):
        values = row._asdict()
        customer_id = values["customerid"]
        start = _months_before(churn_month, int(values["tenure"]))
        churned = values["churn"] == "Yes" and not hide_outcomes
        customers.append(
            {"customer_id": customer_id, "name": customer_id, "country": COUNTRY, "created_at": f"{start} 00:00:00"}
        )
        held = [(column, product) for column, product in SERVICES if values[column] in ("Yes", *INTERNET_PLANS)]
        amounts = _split_cents(float(values["monthlycharges"]), len(held))
        for (column, product), mrr in zip(held, amounts, strict=True):
            subscriptions.append(
                {
                    "subscription_id": f"{customer_id}-{column}",
                    "customer_id": customer_id,
                    "start_date": start.isoformat(),
                    "end_date": churn_month.isoformat() if churned else "",
                    "mrr": mrr,
                    "product": product,
                    "plan": values["internetservice"] if column == "internetservice" else "",
                    "contract_term_months": str(CONTRACT_TERMS[values["contract"]]),
                    "currency": CURRENCY,
                    "status": "canceled" if churned else "active",
                }
            )
    return TelcoSources(
        _in_contract_order("customers", customers), _in_contract_order("subscriptions", subscriptions), churn_month
    )


def _in_contract_order(table: str, rows: list[dict[str, str]]) -> pd.DataFrame:
    columns = next(t for t in TABLES if t.name == table).column_names
    return pd.DataFrame(rows, columns=columns).fillna("")


def write_sources(sources: TelcoSources, directory: Path) -> list[Path]:
    """customers.csv and subscriptions.csv in `directory`, in the contract's column order (UTF-8)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in (("customers", sources.customers), ("subscriptions", sources.subscriptions)):
        path = directory / f"{name}.csv"
        frame.to_csv(path, index=False, encoding="utf-8")
        written.append(path)
    return written


def churn_labels(rows: pd.DataFrame) -> pd.Series:
    """The sample's own outcome per customer id: True for churn = Yes."""
    return pd.Series((rows["churn"] == "Yes").to_numpy(), index=rows["customerid"].to_numpy(), name="churned")
