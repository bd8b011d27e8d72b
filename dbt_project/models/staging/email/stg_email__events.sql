with

source as (select * from {{ source('ops', 'email_events') }}),

final as (
    select
        cast(sg_event_id as {{ dbt.type_string() }}) as event_id,
        cast(sg_message_id as {{ dbt.type_string() }}) as provider_message_id,
        cast(event as {{ dbt.type_string() }}) as event_type,
        lower(trim(email)) as email,
        cast(event_at as {{ dbt.type_timestamp() }}) as event_at,
        url,
        -- custom_args: send_id since the ledger speaks of sends; message_key on messages sent before that
        coalesce(send_id, message_key) as send_id,
        run_id,
        campaign,
        template,
        locale,
        variant,
        coalesce(is_machine_open, false) as is_machine_open,
        bounce_type,
        reason,
        status,
        asm_group_id,
        useragent,
        cast(received_at as {{ dbt.type_timestamp() }}) as received_at,
        cast(loaded_at as {{ dbt.type_timestamp() }}) as loaded_at
    from source
)

select * from final
