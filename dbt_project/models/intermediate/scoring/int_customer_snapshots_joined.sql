{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook=[
        "{{ delete_snapshots_to_rebuild(outcome=true) }}",
        "{{ delete_snapshots_whose_usage_changed() }}",
    ],
) }}
{#- Features of every customer at every snapshot but mrr_percentile, from data dated before the snapshot only
    (docs/scores.md); int_customer_features_monthly adds the percentile. Its parts are tables of their own
    (int_customer_snapshots_*), each one pass over one source: one query joining every source for every
    snapshot peaked at 3 GB under a 2.5 GB limit at 1M customers (bench/scores).
    Incremental by snapshot and customer (macros/snapshot_incremental.sql, docs/incremental.md): the pre-hooks
    delete the rows the three parts rebuild (the trend's predicate, which holds the other two's) and those whose
    usage month changed (usage is not recorded by customer at the gate); every row of the population the table
    then lacks is built. -#}
with

population as (select * from {{ ref('int_customer_snapshots_trended') }}),

subscriptions_summarised as (select * from {{ ref('int_customer_snapshots_subscriptions_summarised') }}),

engagement_summarised as (select * from {{ ref('int_customer_snapshots_engagement_summarised') }}),

usage_months as (select * from {{ ref('int_usage_months_compared') }}),

population_built as (
    select population.*
    from population
    {%- if is_incremental_build() %}
        -- the rows the pre-hooks deleted, and any row missing for another reason (a build killed half-way)
        where not exists (
            select 1 from {{ this }} as kept
            where
                kept.customer_id = population.customer_id
                and kept.snapshot_on = population.snapshot_on
        )
    {%- endif %}
),

features_joined as (
    select
        population_built.customer_id,
        population_built.snapshot_on,
        population_built.feature_month,
        population_built.is_scoring_snapshot,
        population_built.mrr,
        population_built.mrr_change_3_months_ratio,
        population_built.tenure_months,
        population_built.expansions_last_6_months,
        population_built.contractions_last_6_months,
        population_built.employee_count,
        {{ usage_features('usage_months') }},
        cast(coalesce(subscriptions_summarised.product_count, 0) as {{ dbt.type_bigint() }}) as product_count,
        subscriptions_summarised.products_held,
        subscriptions_summarised.contract_term_months,
        subscriptions_summarised.days_to_renewal,
        {{ dbt.datediff('engagement_summarised.last_touch_on', 'population_built.snapshot_on', 'day') }}
            as days_since_last_touch,
        cast(coalesce(engagement_summarised.touches_last_90_days, 0) as {{ dbt.type_bigint() }})
            as touches_last_90_days,
        cast(coalesce(engagement_summarised.conversations_last_90_days, 0) as {{ dbt.type_bigint() }})
            as conversations_last_90_days,
        cast(coalesce(engagement_summarised.tickets_last_90_days, 0) as {{ dbt.type_bigint() }})
            as tickets_last_90_days,
        cast(coalesce(engagement_summarised.open_expansion_deals, 0) as {{ dbt.type_bigint() }})
            as open_expansion_deals,
        cast(coalesce(engagement_summarised.open_renewal_deals, 0) as {{ dbt.type_bigint() }})
            as open_renewal_deals,
        population_built.has_outcome,
        population_built.is_churned_next_90_days,
        population_built.is_expanded_next_90_days,
        population_built.expansion_mrr_next_90_days
    from population_built
    left join usage_months
        on
            population_built.customer_id = usage_months.customer_id
            and population_built.feature_month = usage_months.month
    left join subscriptions_summarised
        on
            population_built.customer_id = subscriptions_summarised.customer_id
            and population_built.snapshot_on = subscriptions_summarised.snapshot_on
    left join engagement_summarised
        on
            population_built.customer_id = engagement_summarised.customer_id
            and population_built.snapshot_on = engagement_summarised.snapshot_on
),

final as (
    select * from features_joined
)

select * from final
