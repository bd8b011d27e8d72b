{{ config(materialized='view') }}
{#- A view of the intermediate table that holds the rules: the same rows, spared a copy (bench/revenue). -#}
with

mrr_movements as (select * from {{ ref('int_mrr_movements_classified') }}),

final as (
    select
        month,
        customer_id,
        mrr,
        previous_mrr,
        movement,
        movement_mrr,
        fx_impact_mrr,
        is_paused,
        is_customer,
        first_paid_month
    from mrr_movements
)

select * from final
