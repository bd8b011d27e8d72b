with

usage as (select * from {{ ref('stg_product__usage') }}),

subscriptions as (select * from {{ ref('int_subscriptions_end_dated') }}),

months as (select * from {{ ref('int_months') }}),

metric_rows as (
    select
        customer_id,
        month,
        metric_value
    from usage
    where metric = '{{ var("usage_metric") }}' and month <= {{ as_of_month() }}
),

usage_months as (
    -- only the months usage has: the spine of every month was 18M subscription-months at 1M customers, that of
    -- the usage months 7M
    select * from months
    where month in (select metric_rows.month from metric_rows)
),

subscription_months as (
    {{ spine_subscriptions_to_months('subscriptions', 'usage_months') }}
),

rows_unioned as (
    select
        customer_id,
        month,
        metric_value,
        cast(null as {{ type_double() }}) as plan_limit,
        true as is_usage
    from metric_rows
    union all
    select
        customer_id,
        month,
        cast(null as {{ type_double() }}) as metric_value,
        plan_limit,
        false as is_usage
    from subscription_months
    where plan_limit > 0
),

metric_months as (
    -- the customer-months with usage, with their plan limit (null without one): one aggregate over both
    -- rather than two and a join
    select
        customer_id,
        month,
        sum(metric_value) as usage_value,
        sum(plan_limit) as plan_limit
    from rows_unioned
    group by customer_id, month
    having bool_or(is_usage)
),

trends_computed as (
    select
        customer_id,
        month,
        usage_value,
        plan_limit,
        avg(usage_value) over (
            partition by customer_id order by month
            rows between 3 preceding and 1 preceding
        ) as trailing_3_month_average,
        count(*) over (
            partition by customer_id order by month
            rows between 3 preceding and 1 preceding
        ) as trailing_months
    from metric_months
),

final as (
    -- doc block customer_signals: usage_drop and near_plan_limit, month by month
    select
        customer_id,
        month,
        usage_value,
        trailing_3_month_average,
        plan_limit,
        {{ ratio('usage_value', 'plan_limit') }} as plan_usage_ratio,
        case
            when trailing_months = 3 and trailing_3_month_average > 0
                then 1 - usage_value / trailing_3_month_average
        end as usage_drop_ratio,
        coalesce(
            trailing_months = 3
            and trailing_3_month_average > 0
            and usage_value <= (1 - {{ var('usage_drop_ratio') }}) * trailing_3_month_average,
            false
        ) as is_usage_drop,
        coalesce(usage_value >= {{ var('near_plan_limit_ratio') }} * plan_limit and plan_limit > 0, false)
            as is_near_plan_limit
    from trends_computed
)

select * from final
