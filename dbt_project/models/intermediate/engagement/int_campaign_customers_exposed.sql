{#- Doc block campaign_lift: who was in which group, for which occasion, and from which day it is measured. -#}
with

recipients as (select * from {{ ref('stg_campaigns__recipients') }}),

sends as (select * from {{ ref('stg_email__sends') }}),

recipients_of_customers as (
    select * from recipients
    where variant in ('treatment', 'holdout') and customer_id is not null
),

sent_messages as (
    select
        send_id,
        coalesce(finished_at, claimed_at) as sent_at
    from sends
    where is_sent
),

first_runs as (
    -- the run that first selected the customer for this occasion: its group is formed there
    select
        campaign,
        customer_id,
        occasion,
        run_id,
        row_number() over (
            partition by campaign, customer_id, occasion order by selected_on, run_id
        ) as run_rank
    from recipients_of_customers
),

occasions as (
    select
        recipients_of_customers.campaign,
        recipients_of_customers.customer_id,
        recipients_of_customers.occasion,
        min(recipients_of_customers.selected_on) as first_selected_on,
        min(sent_messages.sent_at) as first_sent_at,
        max(case when recipients_of_customers.variant = 'holdout' then 1 else 0 end) as was_held_out
    from recipients_of_customers
    left join sent_messages on recipients_of_customers.send_id = sent_messages.send_id
    group by recipients_of_customers.campaign, recipients_of_customers.customer_id, recipients_of_customers.occasion
),

first_run_attributes as (
    -- the customer as its first run saw it; contacts in two languages make it 'mixed'
    select
        recipients_of_customers.campaign,
        recipients_of_customers.customer_id,
        recipients_of_customers.occasion,
        min(recipients_of_customers.run_id) as run_id,
        case
            when count(distinct recipients_of_customers.locale) > 1 then 'mixed'
            else max(recipients_of_customers.locale)
        end as locale,  -- noqa: RF04
        max(recipients_of_customers.rank_at_selection) as rank_at_selection
    from recipients_of_customers
    inner join first_runs
        on
            recipients_of_customers.campaign = first_runs.campaign
            and recipients_of_customers.customer_id = first_runs.customer_id
            and recipients_of_customers.occasion = first_runs.occasion
            and recipients_of_customers.run_id = first_runs.run_id
            and first_runs.run_rank = 1
    group by recipients_of_customers.campaign, recipients_of_customers.customer_id, recipients_of_customers.occasion
),

occasions_grouped as (
    select
        occasions.campaign,
        occasions.customer_id,
        occasions.occasion,
        first_run_attributes.run_id,
        case
            when occasions.first_sent_at is not null then 'treatment'
            when occasions.was_held_out = 1 then 'holdout'
            else 'not_sent'
        end as exposure_group,
        occasions.first_selected_on,
        occasions.first_sent_at,
        case
            when occasions.first_sent_at is not null
                then greatest({{ business_date('occasions.first_sent_at') }}, occasions.first_selected_on)
            else occasions.first_selected_on
        end as start_on,
        first_run_attributes.locale,
        first_run_attributes.rank_at_selection
    from occasions
    inner join first_run_attributes
        on
            occasions.campaign = first_run_attributes.campaign
            and occasions.customer_id = first_run_attributes.customer_id
            and occasions.occasion = first_run_attributes.occasion
),

final as (
    select
        *,
        exposure_group in ('treatment', 'holdout') and row_number() over (
            partition by campaign, customer_id, exposure_group in ('treatment', 'holdout')
            order by first_selected_on, run_id, occasion
        ) = 1 as is_first_in_campaign
    from occasions_grouped
)

select * from final
