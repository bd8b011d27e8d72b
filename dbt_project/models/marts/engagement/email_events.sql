with

events as (select * from {{ ref('int_email_events_classified') }}),

final as (
    select  -- noqa: ST06
        event_id,
        event_type,
        event_at,
        send_id,
        run_id,
        campaign,
        template,
        locale,
        variant,
        email,
        provider_message_id,
        url,
        is_machine_open,
        is_human_open,
        is_scanner_click,
        bounce_type,
        reason,
        status,
        asm_group_id,
        useragent,
        received_at,
        loaded_at
    from events
)

select * from final
