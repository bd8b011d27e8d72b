with

subscription_months as (select * from {{ ref('int_subscriptions_spined_to_months') }}),

months as (select * from {{ ref('int_months') }}),

customer_months as (
    select
        month,
        customer_id,
        sum(mrr) as mrr
    from subscription_months
    group by month, customer_id
),

first_paid_months as (
    select
        customer_id,
        min(month) as first_paid_month
    from customer_months
    where mrr > 0
    group by customer_id
),

customers_spined_to_months as (
    select
        months.month,
        first_paid_months.customer_id,
        first_paid_months.first_paid_month
    from first_paid_months
    inner join months
        on first_paid_months.first_paid_month <= months.month
),

final as (
    select
        customers_spined_to_months.month,
        customers_spined_to_months.customer_id,
        customers_spined_to_months.first_paid_month,
        cast(coalesce(customer_months.mrr, 0) as decimal(18, 2)) as mrr
    from customers_spined_to_months
    left join customer_months
        on
            customers_spined_to_months.customer_id = customer_months.customer_id
            and customers_spined_to_months.month = customer_months.month
)

select * from final
