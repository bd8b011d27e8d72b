with

source as (select * from {{ source('ops', 'campaign_recipients') }}),

final as (
    select
        run_id,
        campaign,
        cast(as_of as date) as selected_on,
        variant,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(contact_id as {{ dbt.type_string() }}) as contact_id,
        lower(trim(email)) as email,
        locale,
        owner_email,
        occasion,
        cast(message_key as {{ dbt.type_string() }}) as send_id,
        coalesce(is_selected, false) as is_selected,
        -- the customer's rank when it was selected, from the marts.customers row kept as context
        {{ json_text('context', 'rank') }} as rank_at_selection
    from source
)

select * from final
