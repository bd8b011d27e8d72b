{#- Features of every customer at every snapshot, from data dated before the snapshot only (docs/scores.md).
    Its parts are tables of their own (int_customer_snapshots_*), each one pass over one source: one query
    joining every source for every snapshot peaked at 3 GB under a 2.5 GB limit at 1M customers (bench/scores). -#}
with

population as (select * from {{ ref('int_customer_snapshots_trended') }}),

subscriptions_summarised as (select * from {{ ref('int_customer_snapshots_subscriptions_summarised') }}),

engagement_summarised as (select * from {{ ref('int_customer_snapshots_engagement_summarised') }}),

usage_months as (select * from {{ ref('int_usage_months_compared') }}),

features_joined as (
    select
        population.customer_id,
        population.snapshot_on,
        population.feature_month,
        population.is_scoring_snapshot,
        population.mrr,
        population.mrr_change_3_months_ratio,
        population.tenure_months,
        -- ranked here, over the whole snapshot, not in the incremental int_customer_snapshots_trended: one
        -- customer's change moves every other customer's rank, and kept rows would go stale
        percent_rank() over (partition by population.snapshot_on order by population.mrr) as mrr_percentile,
        population.expansions_last_6_months,
        population.contractions_last_6_months,
        population.employee_count,
        cast(usage_months.usage_value as {{ type_double() }}) as usage_value,
        {{ ratio('usage_months.usage_value', 'usage_months.trailing_3_month_average') }} - 1
            as usage_vs_3_month_average,
        usage_months.plan_usage_ratio,
        cast(coalesce(subscriptions_summarised.product_count, 0) as {{ dbt.type_bigint() }}) as product_count,
        subscriptions_summarised.products_held,
        subscriptions_summarised.contract_term_months,
        subscriptions_summarised.days_to_renewal,
        {{ dbt.datediff('engagement_summarised.last_touch_on', 'population.snapshot_on', 'day') }}
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
        population.has_outcome,
        population.is_churned_next_90_days,
        population.is_expanded_next_90_days,
        population.expansion_mrr_next_90_days
    from population
    left join usage_months
        on
            population.customer_id = usage_months.customer_id
            and population.feature_month = usage_months.month
    left join subscriptions_summarised
        on
            population.customer_id = subscriptions_summarised.customer_id
            and population.snapshot_on = subscriptions_summarised.snapshot_on
    left join engagement_summarised
        on
            population.customer_id = engagement_summarised.customer_id
            and population.snapshot_on = engagement_summarised.snapshot_on
),

final as (
    select * from features_joined
)

select * from final
