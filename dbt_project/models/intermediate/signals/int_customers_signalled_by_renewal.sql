with

customers as {{ not_materialized() }} (select * from {{ ref('int_customers_scored') }}),

active_subscriptions as {{ not_materialized() }} (select * from {{ ref('int_subscriptions_filtered_to_active') }}),

active_customers as (
    select * from customers
    where status = 'active'
),

renewal_signals as (
    -- entered renewal_upcoming_days before the renewal, or when the subscription started if later
    select
        active_subscriptions.customer_id,
        'renewal_upcoming' as signal,
        max(
            case
                when
                    {{ dbt.dateadd('day', -var('renewal_upcoming_days'), 'active_subscriptions.renewal_on') }}
                    > active_subscriptions.start_date
                    then cast({{ dbt.dateadd('day', -var('renewal_upcoming_days'), 'active_subscriptions.renewal_on') }} as date)  -- noqa: LT05
                else active_subscriptions.start_date
            end
        ) as first_seen_on,
        cast(min({{ dbt.datediff(as_of_date(), 'active_subscriptions.renewal_on', 'day') }}) as {{ type_double() }})
            as signal_value,
        cast({{ var('renewal_upcoming_days') }} as {{ type_double() }}) as signal_threshold,
        cast(min(active_subscriptions.renewal_on) as {{ dbt.type_string() }}) as signal_detail
    from active_subscriptions
    inner join active_customers on active_subscriptions.customer_id = active_customers.customer_id
    where active_subscriptions.renewal_on <= {{ dbt.dateadd('day', var('renewal_upcoming_days'), as_of_date()) }}
    group by active_subscriptions.customer_id
),

final as (
    select * from renewal_signals
)

select * from final
