{#- Features of every customer at every snapshot, from data dated before the snapshot only (docs/scores.md). -#}
{%- set history_months = var('scoring_history_months', 12) -%}
with

months as (select * from {{ ref('int_months') }}),

customers as (select * from {{ ref('stg_crm__customers') }}),

movements as (select * from {{ ref('int_mrr_movements_classified') }}),

usage_months as (select * from {{ ref('int_usage_months_compared') }}),

subscription_months as (select * from {{ ref('int_subscriptions_spined_to_months') }}),

subscriptions as (select * from {{ ref('int_subscriptions_end_dated') }}),

activities as (select * from {{ ref('stg_crm__activities') }}),

support_tickets as (select * from {{ ref('stg_crm__support_tickets') }}),

deals as (select * from {{ ref('stg_crm__deals') }}),

snapshots as (
    -- The first day of each of the last months (training), and the as-of date itself (scoring). A snapshot
    -- sees whole months before its own month and events dated before the snapshot day.
    select
        month as snapshot_on,
        {{ add_months(-1, 'month') }} as feature_month,
        false as is_scoring_snapshot
    from months
    where
        month >= {{ add_months(-history_months, as_of_month()) }}
        and month < {{ as_of_month() }}

    union all

    select
        {{ as_of_date() }} as snapshot_on,
        {{ add_months(-1, as_of_month()) }} as feature_month,
        true as is_scoring_snapshot
),

movements_running as (
    select
        customer_id,
        month,
        mrr,
        is_customer,
        sum(case when mrr > 0 then 1 else 0 end) over (
            partition by customer_id order by month rows between unbounded preceding and current row
        ) as tenure_months
    from movements
),

population as (
    -- Customers paying in the last whole month before the snapshot.
    select
        snapshots.snapshot_on,
        snapshots.feature_month,
        snapshots.is_scoring_snapshot,
        movements_running.customer_id,
        movements_running.mrr,
        movements_running.tenure_months
    from snapshots
    inner join movements_running
        on
            snapshots.feature_month = movements_running.month
            and movements_running.is_customer
),

recent_movements_summarised as (
    select
        population.customer_id,
        population.snapshot_on,
        sum(case when movements.month = {{ add_months(-3, 'population.feature_month') }} then movements.mrr else 0 end)
            as mrr_3_months_before,
        sum(case when movements.movement = 'expansion' then 1 else 0 end) as expansions_last_6_months,
        sum(case when movements.movement = 'contraction' then 1 else 0 end) as contractions_last_6_months
    from population
    inner join movements
        on
            population.customer_id = movements.customer_id
            and population.feature_month >= movements.month
            and movements.month > {{ add_months(-6, 'population.feature_month') }}
    group by population.customer_id, population.snapshot_on
),

subscriptions_held as (
    select
        population.customer_id,
        population.snapshot_on,
        subscriptions.product,
        subscriptions.contract_term_months,
        subscriptions.start_date,
        row_number() over (
            partition by population.customer_id, population.snapshot_on
            order by subscription_months.mrr desc, subscriptions.start_date asc, subscriptions.subscription_id asc
        ) as subscription_rank
    from population
    inner join subscription_months
        on
            population.customer_id = subscription_months.customer_id
            and population.feature_month = subscription_months.month
            and subscription_months.mrr > 0
    inner join subscriptions
        on subscription_months.subscription_id = subscriptions.subscription_id
),

products_counted as (
    select
        customer_id,
        snapshot_on,
        count(distinct product) as product_count
    from subscriptions_held
    group by customer_id, snapshot_on
),

main_subscriptions as (
    -- The renewal is the main subscription's next anniversary: its end_date may not have been known yet.
    select
        customer_id,
        snapshot_on,
        contract_term_months,
        start_date,
        {{ integer_divide(dbt.datediff('start_date', 'snapshot_on', 'month'), 'contract_term_months') }}
            as whole_terms
    from subscriptions_held
    where subscription_rank = 1
),

renewals_found as (
    select
        customer_id,
        snapshot_on,
        contract_term_months,
        case
            when {{ add_months('whole_terms * contract_term_months', 'start_date') }} < snapshot_on
                then {{ add_months('(whole_terms + 1) * contract_term_months', 'start_date') }}
            else {{ add_months('whole_terms * contract_term_months', 'start_date') }}
        end as next_renewal_on
    from main_subscriptions
),

touches_summarised as (
    select
        population.customer_id,
        population.snapshot_on,
        max({{ business_date('activities.occurred_at') }}) as last_touch_on,
        sum(
            case
                when {{ business_date('activities.occurred_at') }} >= {{ dbt.dateadd('day', -90, 'population.snapshot_on') }}  -- noqa: LT05
                    then 1
                else 0
            end
        ) as touches_last_90_days,
        sum(
            case
                when
                    {{ business_date('activities.occurred_at') }} >= {{ dbt.dateadd('day', -90, 'population.snapshot_on') }}  -- noqa: LT05
                    and activities.outcome in (
                        '{{ var("effective_conversation_outcomes") | join("', '") }}'  -- noqa: LT05
                    )
                    then 1
                else 0
            end
        ) as conversations_last_90_days
    from population
    inner join activities
        on
            population.customer_id = activities.customer_id
            and {{ business_date('activities.occurred_at') }} < population.snapshot_on
            and activities.activity_type in (
                '{{ var("touch_activity_types") | join("', '") }}'  -- noqa: LT05
            )
    group by population.customer_id, population.snapshot_on
),

tickets_summarised as (
    select
        population.customer_id,
        population.snapshot_on,
        count(*) as tickets_last_90_days
    from population
    inner join support_tickets
        on
            population.customer_id = support_tickets.customer_id
            and {{ business_date('support_tickets.created_at') }} < population.snapshot_on
            and {{ business_date('support_tickets.created_at') }} >= {{ dbt.dateadd('day', -90, 'population.snapshot_on') }}  -- noqa: LT05
    group by population.customer_id, population.snapshot_on
),

open_deals_summarised as (
    -- Deals open on the snapshot day: created before it, closed (if ever) on or after it.
    select
        population.customer_id,
        population.snapshot_on,
        sum(case when deals.deal_type in ('upsell', 'cross_sell') then 1 else 0 end) as open_expansion_deals,
        sum(case when deals.deal_type = 'renewal' then 1 else 0 end) as open_renewal_deals
    from population
    inner join deals
        on
            population.customer_id = deals.customer_id
            and {{ business_date('deals.created_at') }} < population.snapshot_on
            and (deals.closed_at is null or {{ business_date('deals.closed_at') }} >= population.snapshot_on)
    group by population.customer_id, population.snapshot_on
),

outcomes_found as (
    -- Labels: MRR movements in the snapshot's month and the two after (about 90 days), once all three are whole.
    select
        population.customer_id,
        population.snapshot_on,
        max(case when movements.movement = 'churn' then 1 else 0 end) as churn_count,
        max(case when movements.movement = 'expansion' then 1 else 0 end) as expansion_count,
        sum(case when movements.movement = 'expansion' then movements.movement_mrr else 0 end) as expansion_mrr
    from population
    inner join movements
        on
            population.customer_id = movements.customer_id
            and population.snapshot_on <= movements.month
            and movements.month <= {{ add_months(2, 'population.snapshot_on') }}
    where
        not population.is_scoring_snapshot
        and {{ add_months(3, 'population.snapshot_on') }} <= {{ as_of_month() }}
    group by population.customer_id, population.snapshot_on
),

features_joined as (
    select
        population.customer_id,
        population.snapshot_on,
        population.feature_month,
        population.is_scoring_snapshot,
        cast(population.mrr as double precision) as mrr,
        {{ ratio('population.mrr', 'recent_movements_summarised.mrr_3_months_before') }} - 1
            as mrr_change_3_months_ratio,
        cast(population.tenure_months as {{ dbt.type_bigint() }}) as tenure_months,
        percent_rank() over (partition by population.snapshot_on order by population.mrr) as mrr_percentile,
        cast(coalesce(recent_movements_summarised.expansions_last_6_months, 0) as {{ dbt.type_bigint() }})
            as expansions_last_6_months,
        cast(coalesce(recent_movements_summarised.contractions_last_6_months, 0) as {{ dbt.type_bigint() }})
            as contractions_last_6_months,
        cast(customers.employee_count as double precision) as employee_count,
        cast(usage_months.usage_value as double precision) as usage_value,
        {{ ratio('usage_months.usage_value', 'usage_months.trailing_3_month_average') }} - 1
            as usage_vs_3_month_average,
        usage_months.plan_usage_ratio,
        cast(coalesce(products_counted.product_count, 0) as {{ dbt.type_bigint() }}) as product_count,
        cast(renewals_found.contract_term_months as {{ dbt.type_bigint() }}) as contract_term_months,
        {{ dbt.datediff('population.snapshot_on', 'renewals_found.next_renewal_on', 'day') }}             as days_to_renewal,  -- noqa: LT05
        {{ dbt.datediff('touches_summarised.last_touch_on', 'population.snapshot_on', 'day') }}             as days_since_last_touch,  -- noqa: LT05
        cast(coalesce(touches_summarised.touches_last_90_days, 0) as {{ dbt.type_bigint() }})
            as touches_last_90_days,
        cast(coalesce(touches_summarised.conversations_last_90_days, 0) as {{ dbt.type_bigint() }})
            as conversations_last_90_days,
        cast(coalesce(tickets_summarised.tickets_last_90_days, 0) as {{ dbt.type_bigint() }})
            as tickets_last_90_days,
        cast(coalesce(open_deals_summarised.open_expansion_deals, 0) as {{ dbt.type_bigint() }})
            as open_expansion_deals,
        cast(coalesce(open_deals_summarised.open_renewal_deals, 0) as {{ dbt.type_bigint() }})
            as open_renewal_deals,
        outcomes_found.customer_id is not null as has_outcome,
        outcomes_found.churn_count > 0 as is_churned_next_90_days,
        outcomes_found.expansion_count > 0 as is_expanded_next_90_days,
        cast(outcomes_found.expansion_mrr as double precision) as expansion_mrr_next_90_days
    from population
    inner join customers
        on population.customer_id = customers.customer_id
    left join recent_movements_summarised
        on
            population.customer_id = recent_movements_summarised.customer_id
            and population.snapshot_on = recent_movements_summarised.snapshot_on
    left join usage_months
        on
            population.customer_id = usage_months.customer_id
            and population.feature_month = usage_months.month
    left join products_counted
        on
            population.customer_id = products_counted.customer_id
            and population.snapshot_on = products_counted.snapshot_on
    left join renewals_found
        on
            population.customer_id = renewals_found.customer_id
            and population.snapshot_on = renewals_found.snapshot_on
    left join touches_summarised
        on
            population.customer_id = touches_summarised.customer_id
            and population.snapshot_on = touches_summarised.snapshot_on
    left join tickets_summarised
        on
            population.customer_id = tickets_summarised.customer_id
            and population.snapshot_on = tickets_summarised.snapshot_on
    left join open_deals_summarised
        on
            population.customer_id = open_deals_summarised.customer_id
            and population.snapshot_on = open_deals_summarised.snapshot_on
    left join outcomes_found
        on
            population.customer_id = outcomes_found.customer_id
            and population.snapshot_on = outcomes_found.snapshot_on
),

final as (
    select * from features_joined
)

select * from final
