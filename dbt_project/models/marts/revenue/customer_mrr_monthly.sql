with

mrr_movements as (select * from {{ ref('int_mrr_movements_classified') }}),

final as (
    select
        month,
        customer_id,
        mrr,
        previous_mrr,
        movement,
        movement_mrr
    from mrr_movements
)

select * from final
