"""Chart axes: a percent axis over a small range reads a different label at every tick."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kizuna.reporting import charts
from kizuna.reporting.charts import PERCENT, Chart, percent_axis_format, render_chart

MONTHS = pd.date_range("2026-01-01", periods=6, freq="MS").strftime("%Y-%m-%d")


def _percent_labels(spec: Any, tmp_path: Path) -> list[str]:
    drawn = render_chart(Chart("rates", "rates", spec), tmp_path)
    svg = base64.b64decode(drawn.svg_data_uri.split(",", 1)[1]).decode("utf-8")
    return re.findall(r">([^<>]*%)</text>", svg)


def _lines(values: list[float]) -> Any:
    data = pd.DataFrame({"month": MONTHS, "series": "churn", "value": values})
    return charts.lines(
        data, title="Churn", value_title="Rate", value_format=PERCENT, x_title="Month", series_title="Series"
    )


def _bars(values: list[float]) -> Any:
    data = pd.DataFrame({"category": [f"campaign {i}" for i in range(len(values))], "value": values})
    return charts.bars(data, title="Change", category_title="Campaign", value_title="Change", value_format=PERCENT)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # The shape that repeated "0.1%" three times and "0.3%" twice with one fixed decimal.
        (_lines([0.0012, 0.0018, 0.0025, 0.0031, 0.0022, 0.0015]), ["0.10%", "0.15%", "0.20%", "0.25%", "0.30%"]),
        (_lines([0.00101, 0.00102, 0.00104, 0.00103, 0.00105, 0.00101]), None),
        (_bars([0.0005, 0.0011, 0.0021]), None),
        (_lines([0.91, 0.95, 1.02, 1.08, 0.99, 0.97]), None),
    ],
    ids=["small-range-line", "tiny-range-line", "small-range-bars", "wide-range-line"],
)
def test_percent_ticks_are_all_distinct(spec: Any, expected: list[str] | None, tmp_path: Path) -> None:
    labels = _percent_labels(spec, tmp_path)
    assert len(labels) >= 3, labels
    assert len(set(labels)) == len(labels), labels
    if expected is not None:
        assert labels == expected


def test_percent_values_keep_one_decimal_and_other_formats_are_untouched() -> None:
    assert PERCENT == ".1%"
    assert percent_axis_format(PERCENT) == "%"
    assert percent_axis_format(",.2%") == ",%"
    assert percent_axis_format(",.1f") == ",.1f"
    tooltip = _lines([0.1, 0.2, 0.3, 0.2, 0.1, 0.2]).to_dict()["encoding"]["tooltip"]
    assert {"field": "value", "type": "quantitative", "format": ".1%"} in tooltip
