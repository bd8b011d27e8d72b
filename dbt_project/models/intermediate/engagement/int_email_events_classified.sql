{#- Clicks this soon after delivery are a security scanner's, not a person's (doc block scanner_click). -#}
{%- set scanner_click_seconds = var('scanner_click_seconds', 10) -%}

with

events as (select * from {{ ref('stg_email__events') }}),

deliveries as (
    select
        send_id,
        min(event_at) as delivered_at
    from events
    where event_type = 'delivered' and send_id is not null
    group by send_id
),

final as (
    select
        events.event_id,
        events.provider_message_id,
        events.event_type,
        events.email,
        events.event_at,
        events.url,
        events.send_id,
        events.run_id,
        events.campaign,
        events.template,
        events.locale,
        events.variant,
        events.is_machine_open,
        events.bounce_type,
        events.reason,
        events.status,
        events.asm_group_id,
        events.useragent,
        events.received_at,
        events.loaded_at,
        (events.event_type = 'open' and not events.is_machine_open) as is_human_open,
        coalesce(
            events.event_type = 'click'
            and events.event_at <= {{ dbt.dateadd('second', scanner_click_seconds, 'deliveries.delivered_at') }},
            false
        ) as is_scanner_click
    from events
    left join deliveries on events.send_id = deliveries.send_id
)

select * from final
