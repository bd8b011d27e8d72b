with

activities as (select * from {{ ref('stg_crm__activities') }}),

final as (
    -- doc block inside_sales_kpis: touches by inside-sales owners up to the as-of date
    select
        activity_id,
        customer_id,
        owner_email,
        occurred_at,
        {{ month_of(business_date('occurred_at')) }} as month,
        coalesce(
            outcome in (
                '{{ var("effective_conversation_outcomes") | join("', '") }}'  -- noqa: LT05
            ),
            false
        ) as is_effective_conversation
    from activities
    where
        owner_email like '{{ var("inside_sales_owner_email_pattern") }}'
        and activity_type in (
            '{{ var("touch_activity_types") | join("', '") }}'  -- noqa: LT05
        )
        and {{ business_date('occurred_at') }} <= {{ as_of_date() }}
)

select * from final
