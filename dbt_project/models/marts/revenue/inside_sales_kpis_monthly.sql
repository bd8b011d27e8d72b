with

months as (select * from {{ ref('int_months') }}),

inside_sales_activities as (select * from {{ ref('int_activities_filtered_to_inside_sales_touches') }}),

csqls as (select * from {{ ref('int_deals_filtered_to_csqls') }}),

all_csqls as (select * from {{ ref('int_csqls_unioned') }}),

mrr_kpis as (select * from {{ ref('mrr_kpis_monthly') }}),

activity_summed as (
    select
        month,
        count(distinct customer_id) as accounts_approached,
        sum(case when is_effective_conversation then 1 else 0 end) as effective_conversations
    from inside_sales_activities
    group by month
),

csqls_created as (
    -- CRM CSQL deals and intent CSQLs no deal stands for (doc block intent_csql)
    select
        {{ month_of('created_on') }} as month,
        count(*) as csqls_created,
        sum(case when is_opportunity then 1 else 0 end) as csqls_to_opportunity,
        sum(case when csql_source = 'email_intent' then 1 else 0 end) as intent_csqls_created
    from all_csqls
    group by {{ month_of('created_on') }}
),

csqls_won as (
    select
        {{ month_of(business_date('closed_at')) }} as month,
        count(*) as csqls_won,
        {{ divide_rounded('sum(amount)', var('deal_amount_months')) }} as won_expansion_mrr
    from csqls
    where is_won and {{ business_date('closed_at') }} <= {{ as_of_date() }}
    group by {{ month_of(business_date('closed_at')) }}
),

final as (
    select
        months.month,
        months.is_complete,
        cast(coalesce(activity_summed.accounts_approached, 0) as {{ dbt.type_bigint() }}) as accounts_approached,
        cast(coalesce(activity_summed.effective_conversations, 0) as {{ dbt.type_bigint() }})
            as effective_conversations,
        cast(coalesce(csqls_created.csqls_created, 0) as {{ dbt.type_bigint() }}) as csqls_created,
        cast(coalesce(csqls_created.csqls_to_opportunity, 0) as {{ dbt.type_bigint() }}) as csqls_to_opportunity,
        cast(coalesce(csqls_created.intent_csqls_created, 0) as {{ dbt.type_bigint() }}) as intent_csqls_created,
        {{ ratio('csqls_created.csqls_to_opportunity', 'coalesce(csqls_created.csqls_created, 0)') }}
            as csql_to_opportunity_rate,
        cast(coalesce(csqls_won.csqls_won, 0) as {{ dbt.type_bigint() }}) as csqls_won,
        cast(coalesce(csqls_won.won_expansion_mrr, 0) as decimal(18, 2)) as won_expansion_mrr,
        mrr_kpis.expansion_mrr,
        mrr_kpis.starting_mrr,
        {{ ratio('coalesce(csqls_won.won_expansion_mrr, 0)', 'mrr_kpis.expansion_mrr') }} as share_of_expansion_mrr,
        {{ ratio('coalesce(csqls_won.won_expansion_mrr, 0)', 'mrr_kpis.starting_mrr') }} as nrr_contribution
    from months
    left join activity_summed
        on months.month = activity_summed.month
    left join csqls_created
        on months.month = csqls_created.month
    left join csqls_won
        on months.month = csqls_won.month
    left join mrr_kpis
        on months.month = mrr_kpis.month
)

select * from final
