{#-
  Incremental scoring snapshots (docs/incremental.md, "The scoring snapshots"): tables keyed by customer and
  snapshot day (int_customer_snapshots_*). The scoring snapshot (the as-of day) is rebuilt whole every build; a
  training snapshot (the first day of a past month) keeps its rows but for

  - every customer when the last month the snapshot reads (its feature month; with outcome=true also its outcome
    months, the snapshot's month and the two after, when they are complete) is at or after var
    rebuild_snapshots_from_month, else the environment variable KIZUNA_REBUILD_SNAPSHOTS_FROM_MONTH;
  - the customers of ops.rebuild_snapshot_customers (customer_id, month) when that last month is at or after
    theirs (kizuna.transform.rebuild_plan writes them: the customers the movements rebuild by customer, and those
    whose customer row, activities, tickets, deals or subscription products changed).

  Every row is rebuilt without the month (a full build), and when the as-of month moved since the build before
  (the latest day the table holds is that build's scoring snapshot): the set of training snapshots and their
  outcome windows changed. Usage in a model:
    {{ config(materialized='incremental', incremental_strategy='append',
              pre_hook="{{ delete_snapshots_to_rebuild() }}") }}
    ... where {{ is_snapshot_to_build('snapshots.snapshot_on', 'x.customer_id') }}
-#}
{% macro snapshots_rebuild_from_iso() -%}
    {%- if not is_incremental_build() -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return(rebuild_from_month_iso('rebuild_snapshots_from_month', 'KIZUNA_REBUILD_SNAPSHOTS_FROM_MONTH')) -}}
{%- endmacro %}

{#- The customers whose training snapshots are rebuilt from their own month (none unless rebuilt by customer). -#}
{% macro rebuild_snapshot_customers() -%}
    {%- if snapshots_rebuild_from_iso() is none -%}
        select cast(null as {{ dbt.type_string() }}) as customer_id, cast(null as date) as month where 1 = 0
    {%- else -%}
        select customer_id, month
        from {{ api.Relation.create(schema='ops', identifier='rebuild_snapshot_customers') }}
    {%- endif -%}
{%- endmacro %}

{#- The last month a snapshot's rows read: its feature month, or its last outcome month when it has outcomes. -#}
{% macro snapshot_reads_through(snapshot_on, outcome=false) -%}
    {%- if outcome -%}
        case
            when {{ add_months(3, snapshot_on) }} <= {{ as_of_month() }} then {{ add_months(2, snapshot_on) }}
            else {{ add_months(-1, snapshot_on) }}
        end
    {%- else -%}
        {{ add_months(-1, snapshot_on) }}
    {%- endif -%}
{%- endmacro %}

{#- True for a snapshot an incremental build with a month rebuilds for every customer. -#}
{% macro is_snapshot_rebuilt_whole(snapshot_on, outcome=false) -%}
    (
        {{ snapshot_on }} >= {{ as_of_month() }}
        or {{ snapshot_reads_through(snapshot_on, outcome) }} >= cast('{{ snapshots_rebuild_from_iso() }}' as date)
    )
{%- endmacro %}

{#- True for a (snapshot, customer) row an incremental build with a month rebuilds. The listed customer's
    earliest month, not `exists` with the range predicate: DuckDB then joins on customer_id (1.1 s of CPU over the
    8M joined rows at 1M customers, 2.6 s as a correlated range predicate); false for a customer not listed. -#}
{% macro is_snapshot_rebuilt(snapshot_on, customer_id, outcome=false) -%}
    (
        {{ is_snapshot_rebuilt_whole(snapshot_on, outcome) }}
        or coalesce({{ snapshot_reads_through(snapshot_on, outcome) }} >= (
            select min(rebuilt.month) from ({{ rebuild_snapshot_customers() }}) as rebuilt
            where rebuilt.customer_id = {{ customer_id }}
        ), false)
    )
{%- endmacro %}

{#- The pre-hook: delete the rows this build recomputes (nothing on a first build or a full refresh). -#}
{% macro delete_snapshots_to_rebuild(outcome=false) -%}
    {%- if is_incremental_build() -%}
        {%- if snapshots_rebuild_from_iso() is none -%}
            delete from {{ this }}
        {%- else -%}
            delete from {{ this }} as kept
            where
                (select {{ month_of('max(snapshot_on)') }} from {{ this }}) <> {{ as_of_month() }}
                or {{ is_snapshot_rebuilt('kept.snapshot_on', 'kept.customer_id', outcome) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- True for a row this build computes: every row, or (the table holding rows after the pre-hook) those it deleted. -#}
{% macro is_snapshot_to_build(snapshot_on, customer_id, outcome=false) -%}
    {%- if snapshots_rebuild_from_iso() is none -%}
        true
    {%- else -%}
        (
            not exists (select 1 from {{ this }})
            or {{ is_snapshot_rebuilt(snapshot_on, customer_id, outcome) }}
        )
    {%- endif -%}
{%- endmacro %}

{#- True for a snapshot this build computes for every customer (the filter of is_snapshot_to_build, snapshot by
    snapshot): a model can then read only the rows of the snapshots and customers it builds, before its windows
    and joins, with snapshots_to_build_whole and snapshot_customers_to_build. -#}
{% macro is_snapshot_to_build_whole(snapshot_on, outcome=false) -%}
    {%- if snapshots_rebuild_from_iso() is none -%}
        true
    {%- else -%}
        (
            not exists (select 1 from {{ this }})
            or {{ is_snapshot_rebuilt_whole(snapshot_on, outcome) }}
        )
    {%- endif -%}
{%- endmacro %}

{#- The snapshots (rows of `snapshots`, a relation of int_scoring_snapshots) this build computes whole. -#}
{% macro snapshots_to_build_whole(snapshots, outcome=false) -%}
    select * from {{ snapshots }}
    where {{ is_snapshot_to_build_whole(snapshots ~ '.snapshot_on', outcome) }}
{%- endmacro %}

{#- The other rows this build computes: the snapshot's columns and the customer_id of each listed customer's
    snapshot that reads through its month or later, in a snapshot not computed whole (none without a month).
    With snapshots_to_build_whole, the rows of is_snapshot_to_build, each once. -#}
{% macro snapshot_customers_to_build(snapshots, outcome=false) -%}
    select distinct
        {{ snapshots }}.*,
        rebuilt.customer_id
    from {{ snapshots }}
    inner join ({{ rebuild_snapshot_customers() }}) as rebuilt
        on {{ snapshot_reads_through(snapshots ~ '.snapshot_on', outcome) }} >= rebuilt.month
    where not {{ is_snapshot_to_build_whole(snapshots ~ '.snapshot_on', outcome) }}
{%- endmacro %}

{#- The usage columns of a snapshot's row (int_customer_snapshots_joined), from `usage_months` (a relation of
    int_usage_months_compared) joined on the customer and the snapshot's feature month; null without usage. -#}
{% macro usage_features(usage_months) -%}
    cast({{ usage_months }}.usage_value as {{ type_double() }}) as usage_value,
    {{ ratio(usage_months ~ '.usage_value', usage_months ~ '.trailing_3_month_average') }} - 1
        as usage_vs_3_month_average,
    {{ usage_months }}.plan_usage_ratio
{%- endmacro %}

{#- The pre-hook of int_customer_snapshots_joined after delete_snapshots_to_rebuild: delete the kept rows whose
    usage columns differ from today's usage months. The gate records no usage month (usage is keyless, rewritten
    whole), so a backdated usage row is found here, by comparing, rather than listed. -#}
{% macro delete_snapshots_whose_usage_changed() -%}
    {%- if is_incremental_build() -%}
        delete from {{ this }} as kept
        using (
            select
                compared.customer_id,
                compared.snapshot_on
            from {{ this }} as compared
            left join (
                select
                    usage_months.customer_id,
                    usage_months.month,
                    {{ usage_features('usage_months') }}
                from {{ ref('int_usage_months_compared') }} as usage_months
            ) as usage_now
                on
                    compared.customer_id = usage_now.customer_id
                    and compared.feature_month = usage_now.month
            where
                compared.usage_value is distinct from usage_now.usage_value
                or compared.usage_vs_3_month_average is distinct from usage_now.usage_vs_3_month_average
                or compared.plan_usage_ratio is distinct from usage_now.plan_usage_ratio
        ) as changed
        where
            kept.customer_id = changed.customer_id
            and kept.snapshot_on = changed.snapshot_on
    {%- endif -%}
{%- endmacro %}
