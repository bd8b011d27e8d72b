"""Trained scores on disk: one directory per model version, and a pointer to the one the daily run scores with.

    var/models/<version>/model.joblib    the bundle (scikit-learn models, explanation references, evaluations)
    var/models/<version>/model.json      its card: training window, rows, features, metrics, the file's digest
    var/models/<version>/report.md       the evaluation report, with calibration.svg beside it
    var/models/current.json              {"version": ...}: what scoring loads

Model files are pickles: load only what this project wrote (the digest in model.json catches a damaged or
half-written file, not a forged one; keep var/ writable by the pipeline's user alone).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import joblib
import sklearn

from kizuna.scoring.features import FEATURE_NAMES
from kizuna.scoring.report import write_evaluation_report
from kizuna.scoring.training import ModelBundle

MODEL_FILE = "model.joblib"
CARD_FILE = "model.json"
CURRENT_FILE = "current.json"
# Older versions beyond this many are removed when a new one is saved (the current one is always kept).
KEEP_VERSIONS = 8


class ModelFileError(RuntimeError):
    """A stored model cannot be read: the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class StoredModel:
    bundle: ModelBundle
    directory: Path


def card(bundle: ModelBundle, digest: str) -> dict[str, Any]:
    """What a person (or an audit) needs to know about a model without unpickling it."""
    return {
        "model_version": bundle.version,
        "kind": bundle.kind,
        "seed": bundle.seed,
        "trained_as_of": bundle.as_of.isoformat(),
        "trained_at": bundle.trained_at.isoformat(timespec="seconds"),
        "training_window": {"first_month": bundle.first_month.isoformat(), "last_month": bundle.last_month.isoformat()},
        "training_rows": bundle.training_rows,
        "labelled_rows": bundle.labelled_rows,
        "features": bundle.feature_names,
        "sklearn": bundle.sklearn_version,
        "evaluations": {name: e.as_dict() for name, e in bundle.evaluations.items()},
        "kinds": {name: asdict(choice) for name, choice in bundle.kinds.items()},
        "deals": bundle.deal_evaluation.__dict__ if bundle.deal_evaluation else None,
        "model_file": {"name": MODEL_FILE, "sha256": digest},
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save(models_dir: Path, bundle: ModelBundle, *, make_current: bool = True) -> Path:
    """Write the bundle's directory (complete before it gets its name), then point current.json at it."""
    models_dir.mkdir(parents=True, exist_ok=True)
    final = models_dir / bundle.version
    work = models_dir / f".{bundle.version}.{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    joblib.dump(bundle, work / MODEL_FILE)
    body = card(bundle, _sha256(work / MODEL_FILE))
    (work / CARD_FILE).write_text(json.dumps(body, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    write_evaluation_report(work, bundle)
    if final.exists():  # the same version trained again (same data, seed and day): replace it whole
        shutil.rmtree(final)
    os.replace(work, final)
    if make_current:
        _write_atomically(models_dir / CURRENT_FILE, json.dumps({"model_version": bundle.version}) + "\n")
    _prune(models_dir)
    return final


def _prune(models_dir: Path) -> None:
    current = current_version(models_dir)
    versions = sorted(
        (d for d in models_dir.iterdir() if d.is_dir() and not d.name.startswith(".") and (d / CARD_FILE).exists()),
        key=lambda d: (d / CARD_FILE).stat().st_mtime,
        reverse=True,
    )
    for old in versions[KEEP_VERSIONS:]:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)


def current_version(models_dir: Path) -> str | None:
    pointer = models_dir / CURRENT_FILE
    if not pointer.exists():
        return None
    try:
        version = json.loads(pointer.read_text(encoding="utf-8"))["model_version"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{pointer}: not a model pointer ({exc}); delete it to train a new model") from exc
    if not isinstance(version, str) or not version or "/" in version or version.startswith("."):
        raise ModelFileError(f"{pointer}: model_version {version!r} is not a version name")
    return version


def load(models_dir: Path, version: str) -> StoredModel:
    """The bundle of one version, after checking its file against the digest its card recorded."""
    directory = models_dir / version
    card_path, model_path = directory / CARD_FILE, directory / MODEL_FILE
    if not card_path.exists() or not model_path.exists():
        raise ModelFileError(f"{directory}: model {version} is incomplete (needs {CARD_FILE} and {MODEL_FILE})")
    try:
        expected = json.loads(card_path.read_text(encoding="utf-8"))["model_file"]["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{card_path}: unreadable model card ({exc})") from exc
    if _sha256(model_path) != expected:
        raise ModelFileError(f"{model_path}: its digest differs from the one in {CARD_FILE}: damaged or replaced")
    bundle = joblib.load(model_path)
    if not isinstance(bundle, ModelBundle):
        raise ModelFileError(f"{model_path}: holds a {type(bundle).__name__}, not a kizuna model bundle")
    return StoredModel(bundle, directory)


def why_not_usable(bundle: ModelBundle, as_of: date, kind: str, seed: int, max_age_days: int, now: datetime) -> str:
    """Empty when the stored model may score `as_of`; else the reason to train a new one, in words for the log."""
    if bundle.as_of > as_of:
        return (
            f"model {bundle.version} was trained as of {bundle.as_of}, after {as_of}: scoring an earlier day with it "
            "would use outcomes that day could not know"
        )
    if bundle.sklearn_version != sklearn.__version__:
        return (
            f"model {bundle.version} was saved by scikit-learn {bundle.sklearn_version}, this is {sklearn.__version__}"
        )
    if bundle.fixed_features != FEATURE_NAMES:
        return f"model {bundle.version} was trained on another feature list than this version of kizuna computes"
    if (bundle.kind, bundle.seed) != (kind, seed):
        return (
            f"model {bundle.version} was trained with scores_model={bundle.kind} and seed {bundle.seed}; "
            f"settings ask for {kind} with {seed}"
        )
    age = (now - bundle.trained_at).days
    if age > max_age_days:
        return (
            f"model {bundle.version} is {age} days old (scores_max_model_age_days {max_age_days}): "
            "the weekly train-scores flow has not run"
        )
    if (as_of - bundle.as_of).days > max_age_days:
        return f"model {bundle.version} was trained as of {bundle.as_of}, more than {max_age_days} days before {as_of}"
    return ""
