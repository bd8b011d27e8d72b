{#- The match rule of kizuna.email.intent_links.IntentLink.matches, in SQL (doc block intent_csql). -#}
with

events as (select * from {{ ref('int_email_events_classified') }}),

intent_links as (select * from {{ ref('stg_email__intent_links') }}),

recipients as (select * from {{ ref('stg_campaigns__recipients') }}),

human_clicks as (
    select
        event_id,
        send_id,
        campaign,
        run_id,
        template,
        url,
        event_at as clicked_at
    from events
    where
        event_type = 'click'
        and not is_scanner_click
        and send_id is not null
        and url is not null
        and {{ business_date('event_at') }} <= {{ as_of_date() }}
),

send_customers as (
    -- a send's key includes its contact, so it has one customer
    select
        send_id,
        min(customer_id) as customer_id,
        min(contact_id) as contact_id
    from recipients
    where customer_id is not null
    group by send_id
),

clicks_matched as (
    select
        human_clicks.*,
        intent_links.intent,
        intent_links.link_name,
        intent_links.url as intent_url,
        row_number() over (
            partition by human_clicks.event_id
            order by length(intent_links.url_prefix) desc, intent_links.is_prefix asc, intent_links.intent asc
        ) as match_rank
    from human_clicks
    inner join intent_links
        on
            human_clicks.template = intent_links.template
            and human_clicks.clicked_at >= intent_links.declared_at
            and (intent_links.retired_at is null or human_clicks.clicked_at < intent_links.retired_at)
            and (
                (
                    intent_links.is_prefix
                    and left(human_clicks.url, length(intent_links.url_prefix)) = intent_links.url_prefix
                )
                or (
                    not intent_links.is_prefix
                    and (
                        human_clicks.url = intent_links.url_prefix
                        or left(human_clicks.url, length(intent_links.url_prefix) + 1)
                        in (intent_links.url_prefix || '?', intent_links.url_prefix || '#')
                    )
                )
            )
),

final as (
    select
        clicks_matched.event_id,
        send_customers.customer_id,
        send_customers.contact_id,
        clicks_matched.send_id,
        clicks_matched.campaign,
        clicks_matched.run_id,
        clicks_matched.template,
        clicks_matched.url,
        clicks_matched.intent,
        clicks_matched.link_name,
        clicks_matched.intent_url,
        clicks_matched.clicked_at,
        {{ business_date('clicks_matched.clicked_at') }} as clicked_on
    from clicks_matched
    inner join send_customers on clicks_matched.send_id = send_customers.send_id
    where clicks_matched.match_rank = 1
)

select * from final
