{{ config(materialized='view') }}
{#- A view: only int_mrr_movements_classified reads it; inlined there, nothing of ~13M rows is written
    twice at 1M customers (bench/revenue). -#}
with

subscription_months as (select * from {{ ref('int_subscriptions_spined_to_months') }}),

fx_rates as (select * from {{ ref('int_fx_rates_spined_to_months') }}),

months as (select * from {{ ref('int_months') }}),

subscriptions_converted as (
    -- doc block fx_conversion: each subscription's MRR at its month's rate ...
    select
        subscription_months.month,
        subscription_months.customer_id,
        subscription_months.is_paused,
        {{ convert_money('subscription_months.mrr', 'subscription_months.currency', 'fx_rates.rate') }} as mrr,
        subscription_months.mrr as local_mrr,
        subscription_months.currency
    from subscription_months
    inner join fx_rates
        on
            subscription_months.month = fx_rates.month
            and subscription_months.currency = fx_rates.currency
),

months_and_next_months as (
    -- ... counted in its month, and as last month's MRR in the next month, at both months' rates. No
    -- window: a month after the last counted one gets its row (the MRR left) from this second half.
    select
        month,
        customer_id,
        is_paused,
        mrr,
        cast(0 as decimal(18, 2)) as previous_mrr,
        cast(0 as decimal(18, 2)) as previous_mrr_at_current_rates
    from subscriptions_converted

    union all

    select
        next_months.month,
        subscriptions_converted.customer_id,
        false as is_paused,
        cast(0 as decimal(18, 2)) as mrr,
        subscriptions_converted.mrr as previous_mrr,
        {{ convert_money('subscriptions_converted.local_mrr', 'subscriptions_converted.currency', 'fx_rates.rate') }}
            as previous_mrr_at_current_rates
    from subscriptions_converted
    inner join months as next_months
        on next_months.month = {{ add_months(1, 'subscriptions_converted.month') }}
    inner join fx_rates
        on
            next_months.month = fx_rates.month
            and subscriptions_converted.currency = fx_rates.currency
),

customers_summed as (
    select
        month,
        customer_id,
        cast(sum(mrr) as decimal(18, 2)) as mrr,
        cast(sum(previous_mrr) as decimal(18, 2)) as previous_mrr,
        cast(sum(previous_mrr_at_current_rates - previous_mrr) as decimal(18, 2)) as fx_impact_mrr,
        max(case when is_paused then 1 else 0 end) = 1 as is_paused
    from months_and_next_months
    group by month, customer_id
),

first_paid_months as (
    select
        customer_id,
        min(month) as first_paid_month
    from subscription_months
    where mrr > 0
    group by customer_id
),

final as (
    select
        customers_summed.month,
        customers_summed.customer_id,
        first_paid_months.first_paid_month,
        customers_summed.mrr,
        customers_summed.previous_mrr,
        customers_summed.fx_impact_mrr,
        customers_summed.is_paused
    from customers_summed
    inner join first_paid_months
        on
            customers_summed.customer_id = first_paid_months.customer_id
            and customers_summed.month >= first_paid_months.first_paid_month
)

select * from final
