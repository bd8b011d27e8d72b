{{ config(materialized='view') }}
{#- A view: only int_mrr_movements_classified reads it; inlined there, nothing of ~18M rows is written
    twice at 1M customers (bench/revenue). -#}
with

subscription_months as (select * from {{ ref('int_subscriptions_spined_to_months') }}),

fx_rates as (select * from {{ ref('int_fx_rates_spined_to_months') }}),

count_offsets as (
    select 0 as months_later
    union all
    select 1 as months_later
),

counting_months_rated as (
    -- A subscription-month counts in its own month (0 months later) and, as last month's MRR, in the
    -- next one (1 month later). Per counting month and currency: the two months whose subscription-months
    -- count in it, with its rate and previous_rate. Dates are moved on this small table, not the spine.
    select
        fx_rates.month as counting_month,
        {{ add_months('-count_offsets.months_later', 'fx_rates.month') }} as month,
        fx_rates.currency,
        count_offsets.months_later,
        fx_rates.rate,
        fx_rates.previous_rate
    from fx_rates
    cross join count_offsets
),

subscriptions_counted as (
    -- doc block fx_conversion: each subscription's MRR at its month's rate, counted in its month; as last
    -- month's MRR in the next month, at last month's rate (previous_mrr) and at the next month's
    -- (previous_mrr_at_current_rates). No window: a month after the last counted one gets its row (the
    -- MRR left) from the second count. The next month must be in the spine, so the as-of month's MRR is
    -- counted once.
    select
        counting_months_rated.counting_month as month,
        subscription_months.customer_id,
        subscription_months.is_paused and counting_months_rated.months_later = 0 as is_paused,
        case
            when counting_months_rated.months_later = 0
                then {{ convert_money(
                    'subscription_months.mrr', 'subscription_months.currency', 'counting_months_rated.rate'
                ) }}
            else cast(0 as decimal(18, 2))
        end as mrr,
        case
            when counting_months_rated.months_later = 1
                then {{ convert_money(
                    'subscription_months.mrr', 'subscription_months.currency', 'counting_months_rated.previous_rate'
                ) }}
            else cast(0 as decimal(18, 2))
        end as previous_mrr,
        case
            when counting_months_rated.months_later = 1
                then {{ convert_money(
                    'subscription_months.mrr', 'subscription_months.currency', 'counting_months_rated.rate'
                ) }}
            else cast(0 as decimal(18, 2))
        end as previous_mrr_at_current_rates
    from subscription_months
    inner join counting_months_rated
        on
            subscription_months.month = counting_months_rated.month
            and subscription_months.currency = counting_months_rated.currency
),

customers_summed as (
    select
        month,
        customer_id,
        cast(sum(mrr) as decimal(18, 2)) as mrr,
        cast(sum(previous_mrr) as decimal(18, 2)) as previous_mrr,
        cast(sum(previous_mrr_at_current_rates - previous_mrr) as decimal(18, 2)) as fx_impact_mrr,
        max(case when is_paused then 1 else 0 end) = 1 as is_paused
    from subscriptions_counted
    group by month, customer_id
),

first_paid_months_found as (
    -- doc block first_paid_month: the customer's first month with MRR above 0, found with a window over
    -- the customer's months rather than a second pass over the spine joined back to ~18M customer-months
    -- at 1M customers (bench/revenue).
    select
        *,
        min(case when mrr > 0 then month end) over (partition by customer_id) as first_paid_month
    from customers_summed
),

final as (
    select
        month,
        customer_id,
        first_paid_month,
        mrr,
        previous_mrr,
        fx_impact_mrr,
        is_paused
    from first_paid_months_found
    -- from the first paid month on; a customer that never paid has no first paid month and no rows
    where month >= first_paid_month
)

select * from final
