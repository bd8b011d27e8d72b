with

customers as {{ not_materialized() }} (select * from {{ ref('int_customers_scored') }}),

usage_months as {{ not_materialized() }} (select * from {{ ref('int_usage_months_compared') }}),

active_customers as (
    select * from customers
    where status = 'active'
),

usage_streaks as (
    -- the latest usage month, and the first month of the unbroken run of flagged months ending there
    select
        customer_id,
        max(month) as latest_month,
        max(case when not is_usage_drop then month end) as last_month_without_usage_drop,
        max(case when not is_near_plan_limit then month end) as last_month_without_near_limit
    from usage_months
    group by customer_id
),

usage_streak_starts as (
    select
        usage_months.customer_id,
        min(
            case
                when
                    usage_streaks.last_month_without_usage_drop is null
                    or usage_months.month > usage_streaks.last_month_without_usage_drop
                    then usage_months.month
            end
        ) as usage_drop_since_month,
        min(
            case
                when
                    usage_streaks.last_month_without_near_limit is null
                    or usage_months.month > usage_streaks.last_month_without_near_limit
                    then usage_months.month
            end
        ) as near_limit_since_month
    from usage_months
    inner join usage_streaks
        on usage_months.customer_id = usage_streaks.customer_id
    group by usage_months.customer_id
),

usage_signal_months as (
    select
        usage_months.customer_id,
        usage_months.is_usage_drop,
        usage_months.is_near_plan_limit,
        usage_months.usage_drop_ratio,
        usage_months.plan_usage_ratio,
        usage_streak_starts.usage_drop_since_month,
        usage_streak_starts.near_limit_since_month
    from usage_months
    inner join usage_streaks
        on
            usage_months.customer_id = usage_streaks.customer_id
            and usage_months.month = usage_streaks.latest_month
    inner join usage_streak_starts
        on usage_months.customer_id = usage_streak_starts.customer_id
),

usage_drop_signals as (
    -- doc block customer_signals: seen when the first month of the run was measured, i.e. the month after it
    select
        usage_signal_months.customer_id,
        'usage_drop' as signal,
        {{ add_months(1, 'usage_signal_months.usage_drop_since_month') }} as first_seen_on,
        usage_signal_months.usage_drop_ratio as signal_value,
        cast({{ var('usage_drop_ratio') }} as {{ type_double() }}) as signal_threshold,
        cast(null as {{ dbt.type_string() }}) as signal_detail
    from usage_signal_months
    inner join active_customers on usage_signal_months.customer_id = active_customers.customer_id
    where usage_signal_months.is_usage_drop
),

near_plan_limit_signals as (
    select
        usage_signal_months.customer_id,
        'near_plan_limit' as signal,
        {{ add_months(1, 'usage_signal_months.near_limit_since_month') }} as first_seen_on,
        usage_signal_months.plan_usage_ratio as signal_value,
        cast({{ var('near_plan_limit_ratio') }} as {{ type_double() }}) as signal_threshold,
        cast(null as {{ dbt.type_string() }}) as signal_detail
    from usage_signal_months
    inner join active_customers on usage_signal_months.customer_id = active_customers.customer_id
    where usage_signal_months.is_near_plan_limit
),

final as (
    select * from usage_drop_signals
    union all
    select * from near_plan_limit_signals
)

select * from final
