with

activities as (select * from {{ ref('stg_crm__activities') }}),

deals as (select * from {{ ref('stg_crm__deals') }}),

activities_to_date as (
    select
        *,
        {{ business_date('occurred_at') }} as occurred_on
    from activities
    where {{ business_date('occurred_at') }} <= {{ as_of_date() }}
),

review_dates as (
    -- doc block follow_up_due: a review date set by an activity (a rep logging `later`) is known from the
    -- moment it was logged; a deal's carries no such moment
    select
        customer_id,
        next_review_on as review_on,
        occurred_at as set_at
    from activities_to_date
    where next_review_on is not null
    union all
    select
        customer_id,
        next_review_on as review_on,
        cast(null as {{ dbt.type_timestamp() }}) as set_at
    from deals
    where
        next_review_on is not null
        and (created_at is null or {{ business_date('created_at') }} <= {{ as_of_date() }})
        and (closed_at is null or {{ business_date('closed_at') }} > {{ as_of_date() }})
),

clearing_activities as (
    -- a touch, or an activity that sets a review date of its own
    select
        customer_id,
        occurred_at,
        occurred_on
    from activities_to_date
    where
        activity_type in (
            '{{ var("touch_activity_types") | join("', '") }}'  -- noqa: LT05
        )
        or next_review_on is not null
),

reviews_due as (
    select review_dates.*
    from review_dates
    where
        review_dates.review_on <= {{ as_of_date() }}
        and not exists (
            select 1
            from clearing_activities
            where
                clearing_activities.customer_id = review_dates.customer_id
                and (
                    clearing_activities.occurred_at > review_dates.set_at
                    or (review_dates.set_at is null and clearing_activities.occurred_on >= review_dates.review_on)
                )
        )
),

follow_up_signals as (
    select
        customer_id,
        'follow_up_due' as signal,
        min(review_on) as first_seen_on,
        cast(max({{ dbt.datediff('review_on', as_of_date(), 'day') }}) as {{ type_double() }}) as signal_value,
        cast(0 as {{ type_double() }}) as signal_threshold,
        cast(min(review_on) as {{ dbt.type_string() }}) as signal_detail
    from reviews_due
    group by customer_id
),

final as (
    select * from follow_up_signals
)

select * from final
