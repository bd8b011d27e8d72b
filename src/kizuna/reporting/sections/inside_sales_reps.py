"""Inside-sales KPIs per rep, for the reporting month and a trailing window, with the team's row underneath."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from kizuna.reporting import charts
from kizuna.reporting.charts import Chart
from kizuna.reporting.sections.context import ReportContext, Section, Table

OWNER_MART = "inside_sales_kpis_monthly_by_owner"
TEAM_MART = "inside_sales_kpis_monthly"
TRAILING_MONTHS = 3  # a quarter: long enough for a CSQL created in one month to be won in a later one


@dataclass(frozen=True)
class RepColumn:
    """One figure of the page: the owner mart's column (also its label), where the team row takes it from."""

    column: str
    team: str  # the team mart's column holding the same figure, each CSQL and account once
    owners_add_up: str  # the owner mart's column whose sum over owners is the team's figure (dbt doc block)
    money: bool = False


REP_COLUMNS = (
    # An account two reps touched counts for both; each account's first toucher adds up to the team's count.
    RepColumn("accounts_approached", "accounts_approached", "accounts_first_approached"),
    RepColumn("effective_conversations", "effective_conversations", "effective_conversations"),
    RepColumn("csqls_created", "csqls_created", "csqls_created"),
    RepColumn("csqls_handed_off", "csqls_handed_off", "csqls_handed_off"),
    RepColumn("csqls_accepted", "csqls_accepted", "csqls_accepted"),
    RepColumn("csqls_rejected", "csqls_rejected", "csqls_rejected"),
    RepColumn("csqls_to_opportunity", "csqls_to_opportunity", "csqls_to_opportunity"),
    RepColumn("csqls_received", "csqls_handed_off", "csqls_received"),
    RepColumn("csqls_sla_breached", "csqls_sla_breached", "csqls_sla_breached"),
    # Shared credit: creator and closer each get a won CSQL in full, so each column is the team's figure.
    RepColumn("won_expansion_mrr_as_creator", "won_expansion_mrr", "won_expansion_mrr_as_creator", money=True),
    RepColumn("won_expansion_mrr_as_closer", "won_expansion_mrr", "won_expansion_mrr_as_closer", money=True),
)
# The charts of the trailing window: the hand-off of the CSQLs each rep created, and the MRR each won.
# Column → the label of its series, in the legend's order.
HANDOFF_SERIES = {c: c for c in ("csqls_created", "csqls_handed_off", "csqls_accepted", "csqls_to_opportunity")}
WON_SERIES = {"won_expansion_mrr_as_creator": "as_creator", "won_expansion_mrr_as_closer": "as_closer"}


@dataclass(frozen=True)
class RepFigures:
    """The figures of months first..last: one row per owner (index owner_email) and the team's."""

    first: date
    last: date
    reps: pd.DataFrame
    team: pd.Series


def months_back(month: date, months: int) -> date:
    """The first day of the month `months` before `month`."""
    index = month.year * 12 + month.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def rep_figures(ctx: ReportContext, columns: list[RepColumn], months: int) -> RepFigures:
    """Each owner's figures summed over the `months` months ending with the reporting month, and the team's row:
    the team mart's figure where it has the column, else the owners' sum of the column that adds up to it."""
    last = ctx.reporting_month
    first = months_back(last, months - 1)
    window = "month BETWEEN ? AND ?"
    reps = ctx.df(
        f"""SELECT owner_email, {", ".join(f"sum({c.column})::DOUBLE PRECISION AS {c.column}" for c in columns)}
            FROM marts.{OWNER_MART} WHERE {window} GROUP BY owner_email ORDER BY owner_email""",
        [first, last],
    ).set_index("owner_email")
    from_team = [c for c in columns if c.team in ctx.columns(TEAM_MART)]
    from_owners = [c for c in columns if c not in from_team]
    team: dict[str, float] = {}
    for mart, chosen, source in ((TEAM_MART, from_team, "team"), (OWNER_MART, from_owners, "owners_add_up")):
        if chosen:
            sums = ", ".join(f"sum({getattr(c, source)})::DOUBLE PRECISION" for c in chosen)
            row = ctx.con.execute(f"SELECT {sums} FROM marts.{mart} WHERE {window}", [first, last]).fetchone()
            team |= {c.column: float(v or 0) for c, v in zip(chosen, row or [None] * len(chosen), strict=True)}
    return RepFigures(first, last, reps, pd.Series({c.column: team[c.column] for c in columns}, dtype=float))


def inside_sales_by_rep(ctx: ReportContext) -> Section:
    section = Section("inside_sales_by_rep", ctx.t("inside_sales_by_rep"), [OWNER_MART, TEAM_MART])
    if not ctx.require(section, OWNER_MART, "month", "owner_email"):
        return section
    available, team_columns = ctx.columns(OWNER_MART), ctx.columns(TEAM_MART)
    # A column is shown when the owner mart has it and the team row has a source for it (an older mart lacks some).
    columns = [
        c for c in REP_COLUMNS if c.column in available and (c.team in team_columns or c.owners_add_up in available)
    ]
    for absent in [c.column for c in REP_COLUMNS if c not in columns]:
        section.missing.append(ctx.t("missing_column", mart=OWNER_MART, column=absent))
    if not columns:
        return section
    window = rep_figures(ctx, columns, TRAILING_MONTHS)
    window_label = f"{window.first:%Y-%m}–{window.last:%Y-%m}"
    if window.reps.empty:
        section.notes.append(ctx.t("no_reps", mart=OWNER_MART, window=window_label))
        return section
    section.notes += [ctx.t("rep_shared_credit"), ctx.t("rep_counting", months=TRAILING_MONTHS)]
    month = rep_figures(ctx, columns, 1)
    title = ctx.t("inside_sales_by_rep")
    section.tables.append(_table(ctx, f"{title} {window.last:%Y-%m}", columns, month))
    trailing = ctx.t("rep_trailing", months=TRAILING_MONTHS, window=window_label)
    section.tables.append(_table(ctx, f"{title}: {trailing}", columns, window))
    _charts(ctx, section, columns, window, trailing)
    return section


def _table(ctx: ReportContext, title: str, columns: list[RepColumn], figures: RepFigures) -> Table:
    def cells(values: pd.Series) -> list[str]:
        return [ctx.money(values[c.column]) if c.money else ctx.number(values[c.column]) for c in columns]

    rows = [[str(owner), *cells(values)] for owner, values in figures.reps.iterrows()]
    rows.append([ctx.t("team_total"), *cells(figures.team)])
    return Table(title, [ctx.t("rep"), *(ctx.t(c.column) for c in columns)], rows, [False] + [True] * len(columns))


def _charts(ctx: ReportContext, section: Section, columns: list[RepColumn], figures: RepFigures, when: str) -> None:
    present = {c.column for c in columns}
    divisor, unit, money_format = ctx.money_unit
    for name, series, money in (("handoff", HANDOFF_SERIES, False), ("won", WON_SERIES, True)):
        drawn = [s for s in series if s in present]
        # A rep with nothing in this chart's series (an AE creates no CSQL) is in the table, not a bare label.
        shown = figures.reps.loc[(figures.reps[drawn].fillna(0) != 0).any(axis=1)] if drawn else figures.reps
        if not drawn or shown.empty:
            continue
        reps = [str(owner) for owner in shown.index]
        labels = [ctx.t(series[s]) for s in drawn]
        data = shown[drawn].reset_index().melt(id_vars="owner_email", var_name="series", value_name="value")
        data = data.assign(
            category=data["owner_email"],
            series=data["series"].map(dict(zip(drawn, labels, strict=True))),
            value=data["value"] / (divisor if money else 1.0),
        )
        title = f"{ctx.t(f'rep_{name}')}: {when}"
        section.charts.append(
            Chart(
                f"inside_sales_by_rep_{name}",
                title,
                charts.bars(
                    data,
                    title=title,
                    category_title=ctx.t("rep"),
                    value_title=unit if money else ctx.t("count"),
                    value_format=money_format if money else ",.0f",
                    series_title=ctx.t("series"),
                    sort=reps,
                    label_angle=-30,  # e-mail addresses are long: slanted, they do not run into each other
                    series_sort=labels,
                ),
            )
        )
