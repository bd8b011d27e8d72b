{#-
  Incremental month-grained models (docs/incremental.md). A closed month is not computed again unless a change
  touches it: the model's table keeps its rows before the first month to rebuild and recomputes the rest.

  The first month to rebuild is var `rebuild_from_month` ('YYYY-MM' or a date in the month), else the environment
  variable KIZUNA_REBUILD_FROM_MONTH (how kizuna passes it: read only when dbt executes, so a new month every day
  keeps dbt's partial parse), never later than the last month the table holds (the as-of month of the build before,
  whose rows change every day). Without either, every month is rebuilt; `--full-refresh` or a new model builds the
  table from nothing.

  Usage in a model:
    {{ config(materialized='incremental', incremental_strategy='append',
              pre_hook="{{ delete_months_to_rebuild() }}") }}
    ... where {{ is_month_to_build('month') }}
  A model keyed by customer and month may pass by_customer=true to the pre-hook and also build the months of the
  customers of {{ rebuild_customers() }} from their own month (int_mrr_movements_classified).
  The pre-hook deletes the months to rebuild in the same transaction as the insert; the model then builds every
  month after the last one left. A build killed half-way leaves the table as it was (one transaction), and a build
  that finds fewer months than it expected rebuilds the missing ones: the table says what is missing, not the run.
-#}
{#- dbt's is_incremental(), false in a unit test: the models' unit tests check the formulas on their inputs alone
    (a unit test has no table of its own to keep months from). -#}
{% macro is_incremental_build() -%}
    {{- return(model.resource_type == 'model' and is_incremental()) -}}
{%- endmacro %}

{% macro rebuild_from_month_iso(name='rebuild_from_month', env='KIZUNA_REBUILD_FROM_MONTH') -%}
    {%- set unset = ('', 'None', 'null') -%}
    {%- set text = var(name, none) | string | trim -%}
    {%- if text in unset and execute -%}
        {%- set text = env_var(env, '') | trim -%}
    {%- endif -%}
    {%- if text in unset -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}(-[0-9]{2})?$', text) -%}
        {{- exceptions.raise_compiler_error(
            "var " ~ name ~ " must be a month 'YYYY-MM' or a date 'YYYY-MM-DD', got '" ~ text ~ "'"
        ) -}}
    {%- endif -%}
    {%- do modules.datetime.date(text[0:4] | int, text[5:7] | int, 1) -%}
    {{- return(text[0:7] ~ '-01') -}}
{%- endmacro %}

{#- Rebuilt by customer (docs/incremental.md): with var rebuild_all_customers_from_month (else the environment
    variable KIZUNA_REBUILD_ALL_CUSTOMERS_FROM_MONTH) and a first month to rebuild, a model that passes
    by_customer=true rebuilds every customer only from this month, and the customers of ops.rebuild_customers
    (customer_id, month: kizuna.transform.rebuild_plan writes it before the build) from their own month. -#}
{% macro rebuild_all_customers_from_iso() -%}
    {%- if not is_incremental_build() or rebuild_from_month_iso() is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return(rebuild_from_month_iso(
        'rebuild_all_customers_from_month', 'KIZUNA_REBUILD_ALL_CUSTOMERS_FROM_MONTH'
    )) -}}
{%- endmacro %}

{#- The customers rebuilt from their own month (customer_id, month); none unless rebuilt by customer. It is an
    ops table kizuna writes for this build only, not a source: a model reads it only when the run says so. -#}
{% macro rebuild_customers() -%}
    {%- if rebuild_all_customers_from_iso() is none -%}
        select cast(null as {{ dbt.type_string() }}) as customer_id, cast(null as date) as month where 1 = 0
    {%- else -%}
        select customer_id, month from {{ api.Relation.create(schema='ops', identifier='rebuild_customers') }}
    {%- endif -%}
{%- endmacro %}

{#- The pre-hook: delete the months this build recomputes (nothing on a first build or a full refresh). -#}
{% macro delete_months_to_rebuild(month_column='month', by_customer=false) -%}
    {%- if is_incremental_build() -%}
        {%- set start = rebuild_from_month_iso() -%}
        {%- set customers_from = rebuild_all_customers_from_iso() if by_customer else none -%}
        {%- if start is none -%}
            delete from {{ this }}
        {%- elif customers_from is not none -%}
            delete from {{ this }} as kept
            where
                kept.{{ month_column }} >= (
                    select least(cast('{{ customers_from }}' as date), max({{ month_column }})) from {{ this }}
                )
                {#- the customer's earliest month (none: false), not `exists` with the range predicate: DuckDB joins
                    on customer_id then (0.4 s of CPU over 18M rows at 1M customers, 4.5 s as a correlated range
                    predicate) -#}
                or coalesce(kept.{{ month_column }} >= (
                    select min(rebuilt.month) from ({{ rebuild_customers() }}) as rebuilt
                    where rebuilt.customer_id = kept.customer_id
                ), false)
        {%- else -%}
            delete from {{ this }}
            where {{ month_column }} >= (
                select least(cast('{{ start }}' as date), max({{ month_column }})) from {{ this }}
            )
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- The last month the table still holds after the pre-hook (null: build every month). -#}
{% macro months_built_through(month_column='month') -%}
    {%- if is_incremental_build() -%}
        (select max({{ month_column }}) from {{ this }})
    {%- else -%}
        cast(null as date)
    {%- endif -%}
{%- endmacro %}

{#- True for a month this build computes: every month, or those after the ones the table keeps. -#}
{% macro is_month_to_build(month_expression) -%}
    {%- if is_incremental_build() -%}
        ({{ months_built_through() }} is null or {{ month_expression }} > {{ months_built_through() }})
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}
