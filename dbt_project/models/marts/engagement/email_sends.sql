with

sends as (select * from {{ ref('stg_email__sends') }}),

events as (
    select * from {{ ref('email_events') }}
    where send_id is not null
),

events_rolled_up_to_sends as (
    select
        send_id,
        max(template) as template,  -- noqa: RF04
        max(locale) as locale,  -- noqa: RF04
        max(variant) as variant,
        min(case when event_type = 'processed' then event_at end) as processed_at,
        min(case when event_type = 'delivered' then event_at end) as delivered_at,
        min(case when event_type = 'open' then event_at end) as first_open_at,
        min(case when is_human_open then event_at end) as first_human_open_at,
        min(case when event_type = 'click' then event_at end) as first_click_at,
        min(case when event_type = 'click' and not is_scanner_click then event_at end) as first_human_click_at,
        max(case when is_scanner_click then 1 else 0 end) as scanner_clicked,
        max(case when event_type = 'bounce' then 1 else 0 end) as bounced,
        max(case when event_type = 'dropped' then 1 else 0 end) as dropped,
        max(case when event_type in ('unsubscribe', 'group_unsubscribe') then 1 else 0 end) as unsubscribed,
        max(case when event_type = 'spamreport' then 1 else 0 end) as spam_reported,
        count(*) as event_count
    from events
    group by send_id
),

final as (
    select  -- noqa: ST06
        sends.send_id,
        sends.campaign,
        sends.run_id,
        -- a send with no event yet: the template its run's other sends of the same kind report (one per run)
        coalesce(
            events_rolled_up_to_sends.template,
            max(events_rolled_up_to_sends.template) over (
                partition by sends.campaign, sends.run_id, sends.contact_id like 'owner:%'
            )
        ) as template,  -- noqa: RF04
        events_rolled_up_to_sends.locale,
        events_rolled_up_to_sends.variant,
        sends.contact_id,
        sends.email,
        sends.occasion,
        sends.state,
        sends.is_sent,
        sends.provider_message_id,
        sends.claimed_at,
        sends.finished_at,
        events_rolled_up_to_sends.processed_at,
        events_rolled_up_to_sends.delivered_at,
        events_rolled_up_to_sends.first_open_at,
        events_rolled_up_to_sends.first_human_open_at,
        events_rolled_up_to_sends.first_click_at,
        events_rolled_up_to_sends.first_human_click_at,
        coalesce(events_rolled_up_to_sends.scanner_clicked = 1, false) as has_scanner_click,
        coalesce(
            events_rolled_up_to_sends.first_click_at < events_rolled_up_to_sends.first_human_click_at
            or (
                events_rolled_up_to_sends.first_click_at is not null
                and events_rolled_up_to_sends.first_human_click_at is null
            ),
            false
        ) as is_first_click_scanner,
        coalesce(events_rolled_up_to_sends.bounced = 1, false) as is_bounced,
        coalesce(events_rolled_up_to_sends.dropped = 1, false) as is_dropped,
        coalesce(events_rolled_up_to_sends.unsubscribed = 1, false) as is_unsubscribed,
        coalesce(events_rolled_up_to_sends.spam_reported = 1, false) as is_spam_reported,
        coalesce(events_rolled_up_to_sends.event_count, 0) as event_count
    from sends
    left join events_rolled_up_to_sends on sends.send_id = events_rolled_up_to_sends.send_id
)

select * from final
