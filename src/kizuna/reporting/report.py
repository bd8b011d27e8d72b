"""The static KPI report: read the marts read-only, draw every section, write one HTML page and its PNG charts."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import jinja2

from kizuna.core.connection import Connection, WarehouseError
from kizuna.core.settings import Settings
from kizuna.core.warehouse import connect
from kizuna.reporting.charts import WIDE, WIDTH, RenderedChart, register_cjk_fonts, render_chart
from kizuna.reporting.files import write_text
from kizuna.reporting.sections import SECTIONS, ReportContext, Section
from kizuna.sources import fx

log = logging.getLogger(__name__)

Lang = Literal["ja", "en"]
LANGS: tuple[Lang, ...] = ("ja", "en")
HEADLINE = ("ending_mrr", "ending_customers", "nrr", "grr", "customer_churn_rate")


@dataclass
class RenderedSection:
    key: str
    title: str
    sources: list[str]
    charts: list[RenderedChart]
    section: Section
    error: str | None = None


@dataclass
class ReportResult:
    path: Path
    as_of: date
    lang: str
    sections: list[RenderedSection] = field(default_factory=list)
    font_dir: Path | None = None

    @property
    def png_paths(self) -> list[Path]:
        return [c.png_path for s in self.sections for c in s.charts]

    @property
    def missing(self) -> dict[str, list[str]]:
        """Per section, what is not available yet (marts or columns still to land)."""
        return {s.key: s.section.missing for s in self.sections if s.section.missing}

    @property
    def errors(self) -> dict[str, str]:
        return {s.key: s.error for s in self.sections if s.error}


def reports_dir(settings: Settings) -> Path:
    return settings.var_dir / "reports"


def reporting_currency(settings: Settings) -> str:
    """The dbt var every mart amount is in (dbt_project.yml), so the report names the same currency."""
    return fx.reporting_currency(settings.dbt_project_dir)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,  # mart values (company names, reasons) are data, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _headline(ctx: ReportContext) -> list[tuple[str, str]]:
    if not ctx.has("mrr_kpis_monthly"):
        return []
    present = [c for c in HEADLINE if c in ctx.columns("mrr_kpis_monthly")]
    if not present:
        return []
    cur = ctx.con.execute(
        f"SELECT {', '.join(present)} FROM marts.mrr_kpis_monthly WHERE month = ?", [ctx.reporting_month]
    )
    row = cur.fetchone()
    if row is None:
        return []
    values = dict(zip(present, row, strict=True))
    tiles: list[tuple[str, str]] = []
    if "ending_mrr" in values:
        tiles.append((ctx.t("mrr"), ctx.money(values["ending_mrr"])))
        tiles.append((ctx.t("arr"), ctx.money(float(values["ending_mrr"] or 0) * 12)))
    if "ending_customers" in values:
        tiles.append((ctx.t("customers"), ctx.number(values["ending_customers"])))
    for key in ("nrr", "grr", "customer_churn_rate"):
        if key in values:
            tiles.append((ctx.t(key), ctx.pct(values[key])))
    return tiles


def _latest_month(con: Connection, ctx: ReportContext) -> date | None:
    if not ctx.has("mrr_kpis_monthly"):
        return None
    row = con.execute("SELECT max(month) FROM marts.mrr_kpis_monthly").fetchone()
    return row[0] if row and row[0] else None


def build_report(settings: Settings, as_of: date, lang: Lang = "ja", out_dir: Path | None = None) -> ReportResult:
    """Write report-<as_of>-<lang>.html and report-<as_of>-<lang>/<chart>.png under var/reports (or out_dir)."""
    if lang not in LANGS:
        raise ValueError(f"--lang {lang!r}: use ja or en")
    out = out_dir or reports_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"report-{as_of.isoformat()}-{lang}"
    png_dir = out / stem
    font_dir = register_cjk_fonts(settings.report_font_dir)
    result = ReportResult(out / f"{stem}.html", as_of, lang, font_dir=font_dir)
    started = time.monotonic()
    with connect(settings.warehouse_target, read_only=True) as con:
        ctx = ReportContext(con, as_of, lang, reporting_currency(settings), out / "snapshots")
        latest = _latest_month(con, ctx)
        for build in SECTIONS:
            try:
                section = build(ctx)
            except WarehouseError as exc:  # a mart changed shape: show it in the page, keep the other sections
                log.exception("report section %s failed", build.__name__)
                section = Section(build.__name__, build.__name__, [])
                result.sections.append(RenderedSection(section.key, section.title, [], [], section, str(exc)))
                continue
            # A chart alone in its section spans the page; two or more share each row.
            width = WIDE if len(section.charts) == 1 else WIDTH
            drawn = [render_chart(chart, png_dir, width) for chart in section.charts]
            result.sections.append(RenderedSection(section.key, section.title, section.sources, drawn, section))
        headline = _headline(ctx)
        page = (
            _environment()
            .get_template("report.html.j2")
            .render(
                t=ctx.t,
                lang=lang,
                as_of=as_of.isoformat(),
                reporting_month=ctx.reporting_month.strftime("%Y-%m"),
                latest_month=latest.strftime("%Y-%m") if latest else None,
                stale=bool(latest and latest < as_of.replace(day=1)),
                # The months the marts hold after the reporting month: in progress, so not drawn.
                in_progress=latest.strftime("%Y-%m") if latest and latest > ctx.reporting_month else None,
                headline=headline,
                sections=result.sections,
                png_dir=png_dir.name,
                warehouse=settings.warehouse_label,
                font_missing=font_dir is None,
            )
        )
    write_text(result.path, page)
    log.info("report %s written in %.1f s", result.path, time.monotonic() - started)
    return result
