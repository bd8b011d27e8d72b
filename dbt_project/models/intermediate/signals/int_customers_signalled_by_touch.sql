{%- set touch_days = var('no_recent_touch_days') -%}
with

customers as {{ not_materialized() }} (select * from {{ ref('int_customers_scored') }}),

active_customers as (
    select * from customers
    where status = 'active'
),

touch_thresholds as (
    select
        customer_id,
        customer_rank,
        last_touch_at,
        first_paid_month,
        case customer_rank
            {%- for rank, days in touch_days.items() %}
            when '{{ rank }}' then {{ days }}  -- noqa: LT02
            {%- endfor %}
        end as touch_threshold_days
    from active_customers
),

no_recent_touch_signals as (
    -- the day after the threshold elapsed since the last touch (or since the first paid month, untouched)
    select
        customer_id,
        'no_recent_touch' as signal,
        cast({{ dbt.dateadd(
            'day',
            'touch_threshold_days + 1',
            'coalesce(' ~ business_date('last_touch_at') ~ ', first_paid_month)'
        ) }} as date) as first_seen_on,
        cast(
            {{ dbt.datediff('coalesce(' ~ business_date('last_touch_at') ~ ', first_paid_month)', as_of_date(), 'day') }}  -- noqa: LT05
            as {{ type_double() }}
        ) as signal_value,
        cast(touch_threshold_days as {{ type_double() }}) as signal_threshold,
        customer_rank as signal_detail
    from touch_thresholds
    where
        {{ dbt.datediff('coalesce(' ~ business_date('last_touch_at') ~ ', first_paid_month)', as_of_date(), 'day') }}
        > touch_threshold_days
),

final as (
    select * from no_recent_touch_signals
)

select * from final
