{#- Doc blocks csql_handoff and inside_sales_kpis_by_owner: each CSQL with the owner credited for creating it,
    the owner it was handed to (who closes the deal), its hand-off state and the hand-off SLA. Timestamps after
    the as-of date are not known yet. -#}
{%- set sla_days = var('csql_handoff_sla_business_days') -%}

with

all_csqls as (select * from {{ ref('int_csqls_unioned') }}),

crm_csqls as (select * from {{ ref('int_deals_filtered_to_csqls') }}),

customers as (select * from {{ ref('stg_crm__customers') }}),

csqls_joined as (
    select
        all_csqls.csql_id,
        all_csqls.csql_source,
        all_csqls.customer_id,
        all_csqls.deal_id,
        all_csqls.created_at,
        all_csqls.created_on,
        all_csqls.is_opportunity,
        coalesce(customers.owner_email, '{{ var("inside_sales_queue") }}') as customer_owner_email,
        crm_csqls.owner_email as deal_owner_email,
        crm_csqls.created_by_email,
        crm_csqls.amount,
        coalesce(crm_csqls.is_won and crm_csqls.closed_on <= {{ as_of_date() }}, false) as is_won,
        case when crm_csqls.closed_on <= {{ as_of_date() }} then crm_csqls.closed_on end as closed_on,
        case
            when {{ business_date('crm_csqls.handed_off_at') }} <= {{ as_of_date() }} then crm_csqls.handed_off_at
        end as handed_off_at,
        case
            when {{ business_date('crm_csqls.accepted_at') }} <= {{ as_of_date() }} then crm_csqls.accepted_at
        end as accepted_at,
        case
            when {{ business_date('crm_csqls.rejected_at') }} <= {{ as_of_date() }} then crm_csqls.rejected_at
        end as rejected_at
    from all_csqls
    left join crm_csqls
        on all_csqls.deal_id = crm_csqls.deal_id
    left join customers
        on all_csqls.customer_id = customers.customer_id
),

csqls_credited as (
    select
        *,
        -- an intent CSQL has no creator: it is credited to whom it is routed, as engagement_csqls says
        case
            when csql_source = 'email_intent' then customer_owner_email
            else coalesce(created_by_email, '{{ var("unattributed_owner") }}')
        end as creator_email,
        coalesce(deal_owner_email, customer_owner_email) as closer_email,
        {{ business_date('handed_off_at') }} as handed_off_on,
        {{ business_date('least(accepted_at, rejected_at)') }} as answered_on
    from csqls_joined
),

csqls_timed as (
    select
        *,
        case when handed_off_on is not null then {{ add_business_days(sla_days, 'handed_off_on') }} end
            as sla_due_on
    from csqls_credited
),

final as (
    select
        csql_id,
        csql_source,
        customer_id,
        deal_id,
        creator_email,
        closer_email,
        created_at,
        created_on,
        handed_off_at,
        accepted_at,
        rejected_at,
        handed_off_on,
        answered_on,
        sla_due_on,
        case
            when rejected_at is not null then 'rejected'
            when is_opportunity then 'opportunity'
            when accepted_at is not null then 'accepted'
            when handed_off_at is not null then 'handed_off'
            else 'created'
        end as handoff_state,
        handed_off_at is not null as is_handed_off,
        accepted_at is not null and rejected_at is null as is_accepted,
        rejected_at is not null as is_rejected,
        is_opportunity,
        coalesce(answered_on > sla_due_on or (answered_on is null and {{ as_of_date() }} > sla_due_on), false)
            as is_sla_breached,
        is_won,
        case when is_won then closed_on end as won_on,
        cast(case when is_won then amount end as decimal(18, 2)) as won_amount
    from csqls_timed
)

select * from final
