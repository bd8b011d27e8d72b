"""The evaluation report of one training run: metrics against a naive baseline, reliability, a calibration chart."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kizuna.scoring.model import Evaluation
    from kizuna.scoring.training import ModelBundle

REPORT_FILE = "report.md"
CHART_FILE = "calibration.svg"
COLOURS = {"churn": "#c0392b", "expansion": "#2471a3"}


def calibration_svg(evaluations: dict[str, Evaluation], width: int = 420, height: int = 420) -> str:
    """A reliability diagram: mean predicted probability against the observed rate per band of predictions on the
    validation months, one series per score, the diagonal for perfect calibration; dot area ∝ rows in the band."""
    left, top, right, bottom = 56, 34, 16, 50
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(v: float) -> float:
        return left + v * plot_w

    def y(v: float) -> float:
        return top + (1 - v) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="white" stroke="#888"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">Calibration on the validation months</text>',
    ]
    for tick in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        parts.append(f'<line x1="{x(tick)}" y1="{y(0)}" x2="{x(tick)}" y2="{y(1)}" stroke="#eee"/>')
        parts.append(f'<line x1="{x(0)}" y1="{y(tick)}" x2="{x(1)}" y2="{y(tick)}" stroke="#eee"/>')
        parts.append(f'<text x="{x(tick)}" y="{y(0) + 15}" text-anchor="middle">{tick:.1f}</text>')
        parts.append(f'<text x="{x(0) - 6}" y="{y(tick) + 4}" text-anchor="end">{tick:.1f}</text>')
    parts.append(f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#555" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle">predicted probability</text>')
    parts.append(
        f'<text transform="translate(16 {top + plot_h / 2}) rotate(-90)" text-anchor="middle">observed rate</text>'
    )
    for index, (name, evaluation) in enumerate(evaluations.items()):
        colour = COLOURS.get(name, "#333")
        bands = [b for b in evaluation.reliability_by_band if b["rows"] > 0]
        total = sum(b["rows"] for b in bands) or 1.0
        points = " ".join(f"{x(b['predicted_mean']):.1f},{y(b['observed_rate']):.1f}" for b in bands)
        if points:
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        for b in bands:
            radius = 2.5 + 9 * (b["rows"] / total) ** 0.5
            parts.append(
                f'<circle cx="{x(b["predicted_mean"]):.1f}" cy="{y(b["observed_rate"]):.1f}" r="{radius:.1f}" '
                f'fill="{colour}" fill-opacity="0.5"><title>{escape(name)}: {int(b["rows"])} rows, predicted '
                f"{b['predicted_mean']:.3f}, observed {b['observed_rate']:.3f}</title></circle>"
            )
        parts.append(f'<rect x="{left + 10}" y="{top + 10 + 16 * index}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{left + 26}" y="{top + 19 + 16 * index}">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _number(value: float, digits: int = 3) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"  # NaN: one outcome only in the validation months


def report_markdown(bundle: ModelBundle) -> str:
    lines = [
        f"# Scores model {bundle.version}",
        "",
        f"Trained as of {bundle.as_of} at {bundle.trained_at:%Y-%m-%d %H:%M} UTC: scores_model {bundle.kind}, seed {bundle.seed}, "
        f"scikit-learn {bundle.sklearn_version}; labelled snapshots {bundle.first_month:%Y-%m} … "
        f"{bundle.last_month:%Y-%m}, {bundle.training_rows:,} rows read of {bundle.labelled_rows:,}.",
        "",
        "Each score is evaluated on the latest labelled months by a model trained only on the earlier ones "
        "(time-based split), then refit on all of them. The baseline is one signal a rep could read off the "
        "customer page.",
        "",
        "| score | train months | validation months | validation rows | ROC AUC | PR AUC | Brier | Brier of base rate "
        "| top-decile lift | baseline | baseline ROC AUC |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, e in bundle.evaluations.items():
        lines.append(
            f"| {name} | {e.split.train_months[0]:%Y-%m} … {e.split.train_months[-1]:%Y-%m} "
            f"| {e.split.validation_months[0]:%Y-%m} … {e.split.validation_months[-1]:%Y-%m} | {e.validation_rows:,} "
            f"| {_number(e.roc_auc)} | {_number(e.pr_auc)} | {_number(e.brier, 4)} | {_number(e.brier_of_base_rate, 4)} "
            f"| {_number(e.top_decile_lift, 1)}× | {e.baseline_name} | {_number(e.baseline_roc_auc)} |"
        )
    lines += kind_lines(bundle)
    deals = bundle.deal_evaluation
    lines += [
        "",
        f"Deal wins: validation ROC AUC {_number(deals.roc_auc)} on {deals.validation_deals:,} deals created from "
        f"{deals.validation_from} (trained on {deals.train_deals:,})."
        if deals
        else "Deal wins: no evaluation (too few won and lost deals).",
        "",
        f"![calibration]({CHART_FILE})",
        "",
        "Reliability (validation months): predicted band → rows, mean predicted, observed rate.",
        "",
        "| score | band | rows | predicted | observed |",
        "|---|---|---:|---:|---:|",
    ]
    for name, e in bundle.evaluations.items():
        for b in e.reliability_by_band:
            lines.append(
                f"| {name} | {b['band_from']:.2f}–{b['band_to']:.2f} | {int(b['rows']):,} "
                f"| {b['predicted_mean']:.3f} | {b['observed_rate']:.3f} |"
            )
    lines += ["", "Features: " + ", ".join(f"`{f}`" for f in bundle.feature_names) + "."]
    return "\n".join(lines) + "\n"


def kind_lines(bundle: ModelBundle) -> list[str]:
    """Each score's kind, the validation ROC AUC of every kind evaluated, and the reason for the choice."""
    kinds = bundle.kinds
    if not kinds:
        return []
    lines = [
        "",
        f"Model kind per score (scores_model = {bundle.kind}): validation ROC AUC of each kind evaluated on the same "
        "time-based split, fit on the training months only.",
        "",
        "| score | kind | logistic ROC AUC | gbm ROC AUC | why |",
        "|---|---|---:|---:|---|",
    ]
    for name, choice in kinds.items():
        logistic, gbm = (_number(choice.roc_auc[k], 4) if k in choice.roc_auc else "–" for k in ("logistic", "gbm"))
        why = choice.reason.replace("|", "/")  # a pipe would end the table cell
        lines.append(f"| {name} | {choice.kind} | {logistic} | {gbm} | {why} |")
    return lines


def write_evaluation_report(directory: Path, bundle: ModelBundle) -> Path:
    """report.md and calibration.svg in the model's directory; returns the report's path."""
    (directory / CHART_FILE).write_text(calibration_svg(bundle.evaluations), encoding="utf-8")
    path = directory / REPORT_FILE
    path.write_text(report_markdown(bundle), encoding="utf-8")
    return path
