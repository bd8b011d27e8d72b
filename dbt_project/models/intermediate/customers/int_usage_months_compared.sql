with

usage as (select * from {{ ref('stg_product__usage') }}),

subscription_months as (select * from {{ ref('int_subscriptions_spined_to_months') }}),

metric_months as (
    select
        customer_id,
        month,
        sum(metric_value) as usage_value
    from usage
    where metric = '{{ var("usage_metric") }}' and month <= {{ as_of_month() }}
    group by customer_id, month
),

plan_limits as (
    select
        customer_id,
        month,
        sum(plan_limit) as plan_limit
    from subscription_months
    where plan_limit > 0
    group by customer_id, month
),

trends_computed as (
    select
        metric_months.customer_id,
        metric_months.month,
        metric_months.usage_value,
        plan_limits.plan_limit,
        avg(metric_months.usage_value) over (
            partition by metric_months.customer_id order by metric_months.month
            rows between 3 preceding and 1 preceding
        ) as trailing_3_month_average,
        count(*) over (
            partition by metric_months.customer_id order by metric_months.month
            rows between 3 preceding and 1 preceding
        ) as trailing_months
    from metric_months
    left join plan_limits
        on
            metric_months.customer_id = plan_limits.customer_id
            and metric_months.month = plan_limits.month
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
