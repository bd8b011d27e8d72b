{{ config(materialized='view') }}
{#- A view: a range join of ~1.5M subscriptions and the months costs less to recompute where it is read
    than ~20M rows cost to write and read back at 1M customers (bench/revenue). The body is a macro
    (macros/mrr_spine.sql) that int_mrr_movements_classified also calls with only the months it rebuilds. -#}
with

subscriptions as (select * from {{ ref('int_subscriptions_end_dated') }}),

months as (select * from {{ ref('int_months') }}),

subscriptions_spined_to_months as (
    {{ spine_subscriptions_to_months('subscriptions', 'months') }}
),

final as (
    select * from subscriptions_spined_to_months
)

select * from final
