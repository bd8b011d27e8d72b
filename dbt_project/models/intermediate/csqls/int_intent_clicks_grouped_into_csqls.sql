{#- Doc block intent_csql: one CSQL per customer per episode of intent clicks; an episode ends after
    intent_csql_episode_days without one. It is the CRM's deal, not a second CSQL, when a CSQL deal of the
    customer was open on its first click's day or was created within intent_csql_deal_match_days after it. -#}
{%- set episode_days = var('intent_csql_episode_days') -%}
{%- set match_days = var('intent_csql_deal_match_days') -%}

with

intent_clicks as (select * from {{ ref('int_email_clicks_matched_to_intents') }}),

crm_csqls as (select * from {{ ref('int_deals_filtered_to_csqls') }}),

clicks_after_previous as (
    select
        *,
        lag(clicked_on) over (partition by customer_id order by clicked_at, event_id) as previous_clicked_on
    from intent_clicks
),

clicks_flagged as (
    select
        *,
        case
            when
                previous_clicked_on is null
                or {{ dbt.datediff('previous_clicked_on', 'clicked_on', 'day') }} > {{ episode_days }}  -- noqa: LT05
                then 1
            else 0
        end as starts_episode
    from clicks_after_previous
),

clicks_numbered as (
    select
        *,
        sum(starts_episode) over (
            partition by customer_id order by clicked_at, event_id rows between unbounded preceding and current row
        ) as episode_number
    from clicks_flagged
),

episodes as (
    select
        customer_id,
        episode_number,
        count(*) as clicks,
        max(clicked_at) as last_clicked_at
    from clicks_numbered
    group by customer_id, episode_number
),

episodes_started as (
    select  -- noqa: ST06
        'intent:' || clicks_numbered.event_id as csql_id,
        clicks_numbered.customer_id,
        clicks_numbered.contact_id,
        clicks_numbered.intent,
        clicks_numbered.link_name,
        clicks_numbered.url,
        clicks_numbered.campaign,
        clicks_numbered.run_id,
        clicks_numbered.template,
        clicks_numbered.send_id,
        clicks_numbered.event_id as first_event_id,
        clicks_numbered.clicked_at as created_at,
        clicks_numbered.clicked_on as created_on,
        episodes.last_clicked_at,
        episodes.clicks
    from clicks_numbered
    inner join episodes
        on
            clicks_numbered.customer_id = episodes.customer_id
            and clicks_numbered.episode_number = episodes.episode_number
    where clicks_numbered.starts_episode = 1
),

episodes_matched_to_deals as (
    select
        episodes_started.csql_id,
        crm_csqls.deal_id,
        row_number() over (
            partition by episodes_started.csql_id order by crm_csqls.created_at, crm_csqls.deal_id
        ) as match_rank
    from episodes_started
    inner join crm_csqls
        on
            episodes_started.customer_id = crm_csqls.customer_id
            and (
                (
                    episodes_started.created_on >= crm_csqls.created_on
                    and (crm_csqls.closed_on is null or episodes_started.created_on <= crm_csqls.closed_on)
                )
                or (
                    episodes_started.created_on <= crm_csqls.created_on
                    and cast({{ dbt.dateadd('day', match_days, 'episodes_started.created_on') }} as date)
                    >= crm_csqls.created_on
                )
            )
),

final as (
    select
        episodes_started.*,
        episodes_matched_to_deals.deal_id as matched_deal_id,
        episodes_matched_to_deals.deal_id is null as is_counted
    from episodes_started
    left join episodes_matched_to_deals
        on
            episodes_started.csql_id = episodes_matched_to_deals.csql_id
            and episodes_matched_to_deals.match_rank = 1
)

select * from final
