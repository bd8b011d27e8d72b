{#-
  `name as {{ not_materialized() }} (select * from {{ ref('a_table') }})`: a CTE that a model reads more than
  once is scanned where it is read instead of being copied into a buffer first. DuckDB copies such CTEs by
  default; for a table, or a view that only renames and casts, the copy costs more than the extra scans (at 1M
  customers: ≈ 1.3 s in mrr_kpis_monthly, ≈ 0.6 s in int_subscriptions_end_dated, bench/revenue). PostgreSQL
  12+ and DuckDB know NOT MATERIALIZED; other warehouses get nothing and plan the CTE their own way.
-#}
{% macro not_materialized() -%}
    {{ return(adapter.dispatch('not_materialized', 'kizuna')()) }}
{%- endmacro %}

{% macro default__not_materialized() -%}{%- endmacro %}

{% macro duckdb__not_materialized() -%}not materialized{%- endmacro %}

{% macro postgres__not_materialized() -%}not materialized{%- endmacro %}
