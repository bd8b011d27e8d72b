"""Charts for the KPI report: Vega-Altair specs, drawn to SVG and PNG by vl-convert with a Japanese font."""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import vl_convert as vlc

from kizuna.reporting.files import write_bytes

log = logging.getLogger(__name__)

# Debian's fonts-noto-cjk; the first directory holding a CJK font is registered with vl-convert.
FONT_DIRS = (
    Path("/usr/share/fonts/opentype/noto"),
    Path("/usr/share/fonts/truetype/noto"),
    Path("/usr/share/fonts/opentype/noto-cjk"),
)
# vl-convert takes the first family it has; browsers showing the SVG fall back to the system's Japanese font.
FONT_FAMILY = "Noto Sans CJK JP, Noto Sans JP, Hiragino Sans, Yu Gothic, Meiryo, sans-serif"
# Plot widths: a chart alone in its section spans the page, two share it; the page scales the SVGs to its
# width (report.html.j2), so these set the proportions and the text size at a ≈ 1,400 px wide page.
WIDTH, WIDE, HEIGHT = 520, 1100, 240
COLORS = {"total": "#4c78a8", "increase": "#54a24b", "decrease": "#e45756"}
# The report's percent format, for a value read on its own (a tooltip, a label). A percent axis takes the same
# format without its precision (percent_axis_format), so that adjacent ticks never read the same.
PERCENT = ".1%"

_fonts_lock = threading.Lock()
_registered: dict[Path, bool] = {}


def register_cjk_fonts(font_dir: Path | None = None) -> Path | None:
    """Register a font directory with Japanese glyphs with vl-convert (once); None when none is found."""
    candidates = [font_dir] if font_dir is not None else list(FONT_DIRS)
    with _fonts_lock:
        for directory in candidates:
            if directory is None or not directory.is_dir():
                continue
            if not any(directory.glob("*CJK*")) and not any(directory.glob("*JP*")):
                continue
            if directory not in _registered:
                vlc.register_font_directory(str(directory))
                _registered[directory] = True
            return directory
    log.warning(
        "no font with Japanese glyphs found in %s: chart labels in Japanese will show as boxes "
        "(install Debian's fonts-noto-cjk or set KIZUNA_REPORT_FONT_DIR)",
        ", ".join(str(c) for c in candidates),
    )
    return None


@dataclass(frozen=True)
class Chart:
    """One chart of a section: a file-safe name, a title and its Altair spec."""

    name: str
    title: str
    spec: alt.TopLevelMixin


@dataclass(frozen=True)
class RenderedChart:
    name: str
    title: str
    svg_data_uri: str  # shown in the page through <img>: an image cannot run scripts, whatever its labels say
    png_path: Path


def render_chart(chart: Chart, png_dir: Path, width: int | None = None) -> RenderedChart:
    """Draw one chart to an SVG (for the page) and a PNG file (to paste into slides and chats), width wide."""
    spec: dict[str, Any] = chart.spec.to_dict()
    if width is not None:
        spec["width"] = width
    config = spec.setdefault("config", {})
    config["font"] = FONT_FAMILY
    config.setdefault("view", {})["stroke"] = None
    svg = vlc.vegalite_to_svg(spec)
    png_dir.mkdir(parents=True, exist_ok=True)
    png_path = png_dir / f"{chart.name}.png"
    write_bytes(png_path, vlc.svg_to_png(svg, scale=2))  # rasterise the same SVG: 3x faster than again from the spec
    uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return RenderedChart(chart.name, chart.title, uri, png_path)


def percent_axis_format(value_format: str) -> str:
    """A percent format without its precision ('.1%' → '%'): Vega then takes the precision from the tick step
    (d3's precisionFixed), so ticks 0.05% apart read 0.10%, 0.15%, … where one fixed decimal repeated 0.1%, 0.2%,
    0.2%, and ticks 10% apart read 80%, 90%. Other formats are returned as they are."""
    return re.sub(r"\.\d+(?=%$)", "", value_format)


def _value_axis(value_format: str) -> alt.Axis:
    # Whole numbers (counts) get whole ticks: 2.5 customers would print as a second "3".
    if value_format.endswith(".0f"):
        return alt.Axis(format=value_format, tickMinStep=1)
    return alt.Axis(format=percent_axis_format(value_format))


def _month_axis(title: str) -> alt.X:
    return alt.X("month:T", title=title, axis=alt.Axis(format="%Y-%m", labelAngle=-45, tickCount="month"))


def waterfall(steps: Sequence[tuple[str, float, str, str]], *, title: str, value_title: str, value_format: str) -> Any:
    """A bridge: (label, amount, kind, text) with kind total (drawn from 0) or change (drawn from the running sum).

    Each bar is labelled with its text as given (the exact amount): in the axis unit a small movement such as FX
    would round to a misleading 0.
    """
    rows: list[dict[str, Any]] = []
    levels: list[float] = []
    running = 0.0
    for order, (label, amount, kind, text) in enumerate(steps):
        if kind == "total":
            start, end, running = 0.0, float(amount), float(amount)
            colour = "total"
            levels.append(end)
        else:
            start, end = running, running + float(amount)
            running = end
            colour = "increase" if amount >= 0 else "decrease"
            levels += [start, end]
        rows.append(
            {"order": order, "step": label, "start": start, "end": end, "amount": amount, "kind": colour, "text": text}
        )
    data = pd.DataFrame(rows)
    data["top"] = data[["start", "end"]].max(axis=1)
    # Movements are small next to the totals: start the axis near the lowest level so they stay visible.
    low, high = min(levels), max(levels)
    pad = (high - low) * 0.25 or abs(high) * 0.05 or 1.0
    domain = [low if low <= 0 else max(0.0, low - pad), high + pad]
    labels = [step[0] for step in steps]
    base = alt.Chart(data, title=title).encode(x=alt.X("step:N", sort=labels, title=None, axis=alt.Axis(labelAngle=0)))
    bars = base.mark_bar(size=44).encode(
        y=alt.Y(
            "start:Q", title=value_title, axis=alt.Axis(format=value_format), scale=alt.Scale(domain=domain, clamp=True)
        ),
        y2="end:Q",
        color=alt.Color("kind:N", scale=alt.Scale(domain=list(COLORS), range=list(COLORS.values())), legend=None),
        tooltip=["step:N", "text:N"],
    )
    text = base.mark_text(dy=-6, fontSize=11).encode(y=alt.Y("top:Q"), text=alt.Text("text:N"))
    return alt.layer(bars, text).properties(width=WIDTH, height=HEIGHT)


def lines(
    data: pd.DataFrame, *, title: str, value_title: str, value_format: str, x_title: str, series_title: str
) -> Any:
    """Monthly lines: columns month (ISO date), series, value."""
    return (
        alt.Chart(data, title=title)
        .mark_line(point=alt.OverlayMarkDef(size=18))
        .encode(
            x=_month_axis(x_title),
            y=alt.Y("value:Q", title=value_title, axis=_value_axis(value_format), scale=alt.Scale(zero=False)),
            color=alt.Color("series:N", title=series_title, legend=alt.Legend(orient="bottom")),
            tooltip=["month:T", "series:N", alt.Tooltip("value:Q", format=value_format)],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )


def bars(
    data: pd.DataFrame,
    *,
    title: str,
    category_title: str,
    value_title: str,
    value_format: str,
    series_title: str | None = None,
    sort: Sequence[str] | None = None,
    label_angle: int = 0,
    series_sort: Sequence[str] | None = None,
) -> Any:
    """Bars per category (column category, value), grouped side by side by an optional column series (in the
    order of series_sort when given: a funnel's steps read left to right, not alphabetically)."""
    axis = alt.Axis(labelAngle=label_angle, labelLimit=200)
    encoding: dict[str, Any] = {
        "x": alt.X("category:N", title=category_title, sort=list(sort) if sort else "-y", axis=axis),
        "y": alt.Y("value:Q", title=value_title, axis=_value_axis(value_format)),
        "tooltip": ["category:N", alt.Tooltip("value:Q", format=value_format)],
    }
    if series_title is not None:
        order = list(series_sort) if series_sort else "ascending"
        encoding["color"] = alt.Color(
            "series:N", title=series_title, sort=order, legend=alt.Legend(orient="bottom", labelLimit=400)
        )
        encoding["xOffset"] = alt.XOffset("series:N", sort=order)
        encoding["tooltip"] = ["category:N", "series:N", alt.Tooltip("value:Q", format=value_format)]
    return alt.Chart(data, title=title).mark_bar().encode(**encoding).properties(width=WIDTH, height=HEIGHT)


def heatmap(
    data: pd.DataFrame,
    *,
    title: str,
    x_title: str,
    y_title: str,
    value_title: str,
    value_format: str,
    text: bool = False,
    x_sort: Sequence[str] | None = None,
    y_sort: Sequence[str] | None = None,
) -> Any:
    """Cells of columns x, y (labels) and value."""
    base = alt.Chart(data, title=title).encode(
        x=alt.X("x:O", title=x_title, sort=list(x_sort) if x_sort else "ascending", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("y:O", title=y_title, sort=list(y_sort) if y_sort else "ascending"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "value:Q",
            title=value_title,
            scale=alt.Scale(scheme="blues"),
            legend=alt.Legend(format=value_format),
        ),
        tooltip=["y:O", "x:O", alt.Tooltip("value:Q", format=value_format)],
    )
    layers: list[Any] = [cells]
    if text:
        layers.append(base.mark_text(fontSize=11).encode(text=alt.Text("value:Q", format=value_format)))
    return alt.layer(*layers).properties(width=WIDTH, height=HEIGHT + 60)
