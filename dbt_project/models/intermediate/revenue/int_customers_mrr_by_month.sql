{{ config(materialized='view') }}
{#- A view: only int_mrr_movements_classified reads it; inlined there, nothing of ~18M rows is written
    twice at 1M customers (bench/revenue). Its sums are a macro (macros/mrr_spine.sql) that
    int_mrr_movements_classified also calls with only the months it rebuilds. -#}
with

subscription_months as (select * from {{ ref('int_subscriptions_spined_to_months') }}),

fx_rates as (select * from {{ ref('int_fx_rates_spined_to_months') }}),

customers_summed as (
    {{ sum_customers_mrr('subscription_months', 'fx_rates') }}
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
