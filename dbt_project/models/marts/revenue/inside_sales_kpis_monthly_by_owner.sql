{#- Doc block inside_sales_kpis_by_owner: inside_sales_kpis_monthly per owner. Every column but
    accounts_approached and the *_credited ones adds up over owners to the team's figure; the credited ones
    count a won CSQL for its creator and its closer both (once when they are the same person). -#}
{%- set counts = [
    'activity_summed.accounts_approached',
    'activity_summed.accounts_first_approached',
    'activity_summed.effective_conversations',
    'created_by_creator.csqls_created',
    'created_by_creator.intent_csqls_created',
    'created_by_creator.csqls_handed_off',
    'created_by_creator.csqls_accepted',
    'created_by_creator.csqls_rejected',
    'created_by_creator.csqls_to_opportunity',
    'received_by_closer.csqls_received',
    'received_by_closer.csqls_sla_breached',
    'won_summed.csqls_won_as_creator',
    'won_summed.csqls_won_as_closer',
    'won_summed.csqls_won_credited'
] -%}

with

months as (select * from {{ ref('int_months') }}),

inside_sales_activities as (select * from {{ ref('int_activities_filtered_to_inside_sales_touches') }}),

csqls as (select * from {{ ref('int_csqls_credited_to_owners') }}),

activities_ranked as (
    select
        *,
        row_number() over (partition by month, customer_id order by occurred_at, activity_id) as touch_rank
    from inside_sales_activities
),

activity_summed as (
    select
        month,
        owner_email,
        count(distinct customer_id) as accounts_approached,
        sum(case when touch_rank = 1 then 1 else 0 end) as accounts_first_approached,
        sum(case when is_effective_conversation then 1 else 0 end) as effective_conversations
    from activities_ranked
    group by month, owner_email
),

created_by_creator as (
    select
        {{ month_of('created_on') }} as month,
        creator_email as owner_email,
        count(*) as csqls_created,
        sum(case when csql_source = 'email_intent' then 1 else 0 end) as intent_csqls_created,
        sum(case when is_handed_off then 1 else 0 end) as csqls_handed_off,
        sum(case when is_accepted then 1 else 0 end) as csqls_accepted,
        sum(case when is_rejected then 1 else 0 end) as csqls_rejected,
        sum(case when is_opportunity then 1 else 0 end) as csqls_to_opportunity
    from csqls
    group by {{ month_of('created_on') }}, creator_email
),

received_by_closer as (
    select
        {{ month_of('created_on') }} as month,
        closer_email as owner_email,
        count(*) as csqls_received,
        sum(case when is_sla_breached then 1 else 0 end) as csqls_sla_breached
    from csqls
    where is_handed_off
    group by {{ month_of('created_on') }}, closer_email
),

won_credits as (
    select
        csql_id,
        won_on,
        won_amount,
        creator_email as owner_email,
        1 as is_creator,
        0 as is_closer
    from csqls
    where is_won

    union all

    select
        csql_id,
        won_on,
        won_amount,
        closer_email as owner_email,
        0 as is_creator,
        1 as is_closer
    from csqls
    where is_won
),

won_credits_per_owner as (
    -- shared credit: one row per won CSQL and owner, whether creator, closer or both
    select
        {{ month_of('won_on') }} as month,
        owner_email,
        csql_id,
        max(won_amount) as won_amount,
        max(is_creator) as is_creator,
        max(is_closer) as is_closer
    from won_credits
    group by {{ month_of('won_on') }}, owner_email, csql_id
),

won_summed as (
    select
        month,
        owner_email,
        sum(is_creator) as csqls_won_as_creator,
        sum(is_closer) as csqls_won_as_closer,
        count(*) as csqls_won_credited,
        sum(case when is_creator = 1 then won_amount else 0 end) as won_amount_as_creator,
        sum(case when is_closer = 1 then won_amount else 0 end) as won_amount_as_closer,
        sum(won_amount) as won_amount_credited
    from won_credits_per_owner
    group by month, owner_email
),

owner_months as (
    select
        month,
        owner_email
    from activity_summed
    union
    select
        month,
        owner_email
    from created_by_creator
    union
    select
        month,
        owner_email
    from received_by_closer
    union
    select
        month,
        owner_email
    from won_summed
),

final as (
    select
        months.month,
        owner_months.owner_email,
        months.is_complete,
        {%- for column in counts %}
        cast(coalesce({{ column }}, 0) as {{ dbt.type_bigint() }}) as {{ column.split('.')[1] }},  -- noqa: LT02
        {%- endfor %}
        {{ divide_rounded('coalesce(won_summed.won_amount_as_creator, 0)', var('deal_amount_months')) }}
            as won_expansion_mrr_as_creator,
        {{ divide_rounded('coalesce(won_summed.won_amount_as_closer, 0)', var('deal_amount_months')) }}
            as won_expansion_mrr_as_closer,
        {{ divide_rounded('coalesce(won_summed.won_amount_credited, 0)', var('deal_amount_months')) }}
            as won_expansion_mrr_credited
    from owner_months
    inner join months
        on owner_months.month = months.month
    left join activity_summed
        on owner_months.month = activity_summed.month and owner_months.owner_email = activity_summed.owner_email
    left join created_by_creator
        on
            owner_months.month = created_by_creator.month
            and owner_months.owner_email = created_by_creator.owner_email
    left join received_by_closer
        on
            owner_months.month = received_by_closer.month
            and owner_months.owner_email = received_by_closer.owner_email
    left join won_summed
        on owner_months.month = won_summed.month and owner_months.owner_email = won_summed.owner_email
)

select * from final
