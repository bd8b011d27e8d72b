{{ config(materialized='view') }}
{#- A view of the intermediate table that holds the rules: the same rows, spared a copy (bench/revenue). -#}
with

mrr_movements as (select * from {{ ref('int_mrr_movements_classified') }}),

months as (select * from {{ ref('int_months') }}),

final as (
    select
        mrr_movements.month,
        months.is_complete,
        mrr_movements.customer_id,
        mrr_movements.mrr,
        mrr_movements.previous_mrr,
        mrr_movements.movement,
        mrr_movements.movement_mrr,
        mrr_movements.fx_impact_mrr,
        mrr_movements.is_paused,
        mrr_movements.is_customer,
        mrr_movements.first_paid_month
    from mrr_movements
    inner join months
        on mrr_movements.month = months.month
)

select * from final
