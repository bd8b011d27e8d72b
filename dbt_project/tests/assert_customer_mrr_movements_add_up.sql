-- Every customer-month's movement explains its change: previous_mrr + fx_impact_mrr + movement_mrr = mrr,
-- and the movement's sign agrees with its name. Returns the customer-months that do not.
with

customer_mrr_monthly as (select * from {{ ref('customer_mrr_monthly') }}),

final as (
    select
        month,
        customer_id,
        mrr,
        previous_mrr,
        fx_impact_mrr,
        movement,
        movement_mrr
    from customer_mrr_monthly
    where
        previous_mrr + fx_impact_mrr + movement_mrr <> mrr
        or (movement in ('new', 'expansion') and movement_mrr <= 0)
        or (movement in ('contraction', 'churn') and movement_mrr >= 0)
        or (movement = 'none' and movement_mrr <> 0)
        or (movement = 'churn' and mrr <> 0)
)

select
    month,
    customer_id,
    mrr,
    previous_mrr,
    fx_impact_mrr,
    movement,
    movement_mrr
from final
