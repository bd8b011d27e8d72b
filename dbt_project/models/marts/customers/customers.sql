with

customers as (select * from {{ ref('stg_crm__customers') }}),

contacts as (select * from {{ ref('stg_crm__contacts') }}),

customer_mrr_monthly as (select * from {{ ref('int_mrr_movements_classified') }}),

active_subscriptions as (select * from {{ ref('int_subscriptions_filtered_to_active') }}),

revenue_histories as (
    select
        customer_id,
        min(first_paid_month) as first_paid_month,
        sum(case when month = {{ as_of_month() }} then mrr else 0 end) as current_mrr,
        -- doc block tenure
        sum(case when mrr > 0 then 1 else 0 end) as tenure_months,
        max(case when movement = 'churn' then month end) as last_churn_month
    from customer_mrr_monthly
    group by customer_id
),

main_subscriptions as (
    select
        customer_id,
        contract_term_months,
        row_number() over (
            partition by customer_id order by mrr desc, start_date asc, subscription_id asc
        ) as subscription_rank
    from active_subscriptions
),

renewals as (
    select
        customer_id,
        min(renewal_on) as next_renewal_on
    from active_subscriptions
    group by customer_id
),

products_paid as (
    select distinct
        customer_id,
        product
    from active_subscriptions
    where mrr > 0 and product is not null
),

products_held as (
    select
        customer_id,
        count(*) as product_count,
        {{ dbt.listagg('product', "', '", 'order by product') }} as products_held
    from products_paid
    group by customer_id
),

primary_contacts as (
    select
        customer_id,
        email,
        row_number() over (partition by customer_id order by contact_id) as contact_rank
    from contacts
    where is_primary
),

final as (
    select
        customers.customer_id,
        customers.name,
        customers.industry,
        customers.employee_count,
        customers.prefecture,
        customers.country,
        customers.owner_email,
        customers.cs_owner_email,
        customers.created_at,
        primary_contacts.email as primary_contact_email,
        revenue_histories.first_paid_month,
        cast(coalesce(revenue_histories.current_mrr, 0) as decimal(18, 2)) as current_mrr,
        -- doc block customer_status
        case
            when revenue_histories.current_mrr > 0 then 'active'
            when revenue_histories.first_paid_month is not null then 'churned'
            else 'prospect'
        end as status,
        case
            when revenue_histories.current_mrr = 0 then revenue_histories.last_churn_month
        end as churned_on,
        cast(coalesce(revenue_histories.tenure_months, 0) as {{ dbt.type_bigint() }}) as tenure_months,
        main_subscriptions.contract_term_months,
        cast(coalesce(products_held.product_count, 0) as {{ dbt.type_bigint() }}) as product_count,
        products_held.products_held,
        renewals.next_renewal_on
    from customers
    left join revenue_histories
        on customers.customer_id = revenue_histories.customer_id
    left join main_subscriptions
        on
            customers.customer_id = main_subscriptions.customer_id
            and main_subscriptions.subscription_rank = 1
    left join renewals
        on customers.customer_id = renewals.customer_id
    left join products_held
        on customers.customer_id = products_held.customer_id
    left join primary_contacts
        on
            customers.customer_id = primary_contacts.customer_id
            and primary_contacts.contact_rank = 1
)

select * from final
