"""The KPI report's sections, one module per subject; each reads the marts it needs and says which are missing."""

from __future__ import annotations

from collections.abc import Callable

from kizuna.reporting.sections.campaigns import campaign_performance
from kizuna.reporting.sections.cohorts import cohort_retention
from kizuna.reporting.sections.context import ReportContext, Section, Table
from kizuna.reporting.sections.existing import churn_reasons, existing_revenue
from kizuna.reporting.sections.inside_sales import inside_sales
from kizuna.reporting.sections.inside_sales_reps import inside_sales_by_rep
from kizuna.reporting.sections.ranks import ranks
from kizuna.reporting.sections.revenue import churn_rates, mrr_bridge, mrr_trend, retention

__all__ = ["SECTIONS", "ReportContext", "Section", "Table"]

# In page order.
SECTIONS: tuple[Callable[[ReportContext], Section], ...] = (
    mrr_bridge,
    mrr_trend,
    retention,
    churn_rates,
    cohort_retention,
    ranks,
    existing_revenue,
    churn_reasons,
    inside_sales,
    inside_sales_by_rep,
    campaign_performance,
)
