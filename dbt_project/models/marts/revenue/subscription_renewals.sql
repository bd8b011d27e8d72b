with

active_subscriptions as (select * from {{ ref('int_subscriptions_filtered_to_active') }}),

final as (
    select
        subscription_id,
        customer_id,
        product,
        plan,
        status,
        mrr,
        currency,
        contract_term_months,
        start_date,
        end_date,
        is_open_ended,
        renewal_on,
        {{ dbt.datediff(as_of_date(), 'renewal_on', 'day') }}
            as days_to_renewal
    from active_subscriptions
)

select * from final
