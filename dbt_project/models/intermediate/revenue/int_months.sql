with recursive

subscriptions as (select * from {{ ref('stg_billing__subscriptions') }}),

bounds as (
    select
        min({{ month_of('start_date') }}) as first_month,
        {{ as_of_month() }} as last_month
    from subscriptions
    where start_date <= {{ as_of_date() }}
),

months_spined as (
    select
        first_month as month,
        last_month
    from bounds
    where first_month is not null

    union all

    select
        {{ add_months(1, 'month') }} as month,
        last_month
    from months_spined
    where month < last_month
),

final as (
    select
        month,
        {{ dbt.last_day('month', 'month') }} as month_end_on,
        -- doc block month_counting: the month's last day, or the as-of date in the as-of month.
        case
            when month = last_month then {{ as_of_date() }}
            else {{ dbt.last_day('month', 'month') }}
        end as snapshot_on,
        month = last_month as is_as_of_month,
        -- doc block month_completeness: over once the as-of date is past the month's last day
        {{ as_of_date() }} > {{ dbt.last_day('month', 'month') }} as is_complete
    from months_spined
)

select * from final
