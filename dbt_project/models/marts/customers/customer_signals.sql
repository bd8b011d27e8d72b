-- One intermediate model per signal family (models/intermediate/signals/); here they meet the customer.
with

customers as (select * from {{ ref('int_customers_scored') }}),

usage_signals as (select * from {{ ref('int_customers_signalled_by_usage') }}),

renewal_signals as (select * from {{ ref('int_customers_signalled_by_renewal') }}),

touch_signals as (select * from {{ ref('int_customers_signalled_by_touch') }}),

support_signals as (select * from {{ ref('int_customers_signalled_by_support') }}),

purchase_signals as (select * from {{ ref('int_customers_signalled_by_purchase') }}),

cross_sell_signals as (select * from {{ ref('int_customers_signalled_by_cross_sell') }}),

follow_up_signals as (select * from {{ ref('int_customers_signalled_by_follow_up') }}),

signals_unioned as (
    select * from usage_signals
    union all
    select * from renewal_signals
    union all
    select * from touch_signals
    union all
    select * from support_signals
    union all
    select * from purchase_signals
    union all
    select * from cross_sell_signals
    union all
    select * from follow_up_signals
),

final as (
    select
        signals_unioned.customer_id,
        signals_unioned.signal,
        -- never after the as-of date: a signal is known on the day the data shows it, at the latest today
        case
            when signals_unioned.first_seen_on > {{ as_of_date() }} then {{ as_of_date() }}
            else signals_unioned.first_seen_on
        end as first_seen_on,
        signals_unioned.signal_value,
        signals_unioned.signal_threshold,
        signals_unioned.signal_detail,
        customers.customer_rank as rank,
        customers.mrr
    from signals_unioned
    inner join customers on signals_unioned.customer_id = customers.customer_id
)

select * from final
