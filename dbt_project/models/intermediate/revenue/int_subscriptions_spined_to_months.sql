{{ config(materialized='view') }}
{#- A view: a range join of ~1.5M subscriptions and the months costs less to recompute where it is read
    than ~20M rows cost to write and read back at 1M customers (bench/revenue). -#}
with

subscriptions as (select * from {{ ref('int_subscriptions_end_dated') }}),

months as (select * from {{ ref('int_months') }}),

subscriptions_spined_to_months as (
    select
        months.month,
        subscriptions.subscription_id,
        subscriptions.customer_id,
        subscriptions.currency,
        subscriptions.plan_limit,
        subscriptions.status = 'paused' and months.is_as_of_month as is_paused,
        -- doc block month_counting; an open-ended subscription (end_date null) runs to the as-of month.
        {{ counted_mrr('subscriptions.status', 'subscriptions.mrr', 'months.is_as_of_month') }} as mrr
    from subscriptions
    inner join months
        on
            subscriptions.start_date <= months.snapshot_on
            and (
                subscriptions.effective_end_date is null
                or subscriptions.effective_end_date > months.snapshot_on
            )
),

final as (
    select * from subscriptions_spined_to_months
)

select * from final
