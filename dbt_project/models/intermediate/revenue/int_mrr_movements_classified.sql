with

customer_months as (select * from {{ ref('int_customers_mrr_by_month') }}),

previous_months_joined as (
    select
        month,
        customer_id,
        first_paid_month,
        mrr,
        cast(
            coalesce(lag(mrr) over (partition by customer_id order by month), 0) as decimal(18, 2)
        ) as previous_mrr
    from customer_months
),

movements_classified as (
    -- doc block mrr_movements
    select
        month,
        customer_id,
        first_paid_month,
        mrr,
        previous_mrr,
        cast(mrr - previous_mrr as decimal(18, 2)) as movement_mrr,
        case
            when mrr > 0 and month = first_paid_month then 'new'
            when mrr > 0 and previous_mrr = 0 then 'reactivation'
            when mrr = 0 and previous_mrr > 0 then 'churn'
            when mrr > previous_mrr then 'expansion'
            when mrr < previous_mrr then 'contraction'
            else 'none'
        end as movement
    from previous_months_joined
),

final as (
    -- Keep paid months and the churn month; a lapsed customer's later zero months carry no news.
    select * from movements_classified
    where mrr > 0 or previous_mrr > 0
)

select * from final
