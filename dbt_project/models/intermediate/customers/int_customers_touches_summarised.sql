with

activities as (select * from {{ ref('stg_crm__activities') }}),

touches as (
    select * from activities
    where
        activity_type in (
            '{{ var("touch_activity_types") | join("', '") }}'  -- noqa: LT05
        )
        and {{ business_date('occurred_at') }} <= {{ as_of_date() }}
),

final as (
    -- doc block customer_rank: the relationship axis
    select
        customer_id,
        max(occurred_at) as last_touch_at,
        sum(
            case when {{ business_date('occurred_at') }} > {{ dbt.dateadd('day', -90, as_of_date()) }} then 1 else 0 end
        ) as touches_last_90_days,
        sum(
            case
                when
                    {{ business_date('occurred_at') }} > {{ dbt.dateadd('day', -90, as_of_date()) }}
                    and outcome in (
                        '{{ var("effective_conversation_outcomes") | join("', '") }}'  -- noqa: LT05
                    )
                    then 1
                else 0
            end
        ) as conversations_last_90_days
    from touches
    group by customer_id
)

select * from final
