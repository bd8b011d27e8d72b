{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_months_to_rebuild() }}",
) }}
{#- Incremental (macros/incremental.sql, docs/incremental.md): each month reads its own customer-months and those
    12 months earlier, so a rebuilt month needs nothing of the months kept. -#}
with

months as (
    select * from {{ ref('int_months') }}
    where {{ is_month_to_build('month') }}
),

customer_mrr_monthly as {{ not_materialized() }} (select * from {{ ref('int_mrr_movements_classified') }}),

movements_summed as (
    select
        month,
        sum(previous_mrr) as starting_mrr,
        sum(case when movement = 'new' then movement_mrr else 0 end) as new_mrr,
        sum(case when movement = 'expansion' then movement_mrr else 0 end) as expansion_mrr,
        sum(case when movement = 'contraction' then -movement_mrr else 0 end) as contraction_mrr,
        sum(case when movement = 'churn' then -movement_mrr else 0 end) as churned_mrr,
        sum(case when movement = 'reactivation' then movement_mrr else 0 end) as reactivation_mrr,
        sum(fx_impact_mrr) as fx_impact_mrr,
        sum(mrr) as ending_mrr,
        sum(case when was_customer then 1 else 0 end) as starting_customers,
        sum(case when movement = 'new' then 1 else 0 end) as new_customers,
        sum(case when movement = 'churn' then 1 else 0 end) as churned_customers,
        sum(case when movement = 'reactivation' then 1 else 0 end) as reactivated_customers,
        sum(case when is_customer then 1 else 0 end) as ending_customers
    from customer_mrr_monthly
    where {{ is_month_to_build('month') }}
    group by month
),

year_ago_customers_followed as (
    -- doc block mrr_kpis: the customers paying 12 months earlier, followed to this month
    select
        {{ add_months(12, 'year_ago.month') }} as month,
        sum(year_ago.mrr) as mrr_12_months_ago,
        sum(coalesce(this_month.mrr, 0)) as mrr_of_customers_12_months_ago,
        sum(
            case when coalesce(this_month.mrr, 0) < year_ago.mrr then coalesce(this_month.mrr, 0) else year_ago.mrr end
        ) as retained_mrr_12_months_ago
    from customer_mrr_monthly as year_ago
    left join customer_mrr_monthly as this_month
        on
            year_ago.customer_id = this_month.customer_id
            and this_month.month = {{ add_months(12, 'year_ago.month') }}
    -- into reported months only: a customer-month of the last 12 months would land after the as-of month
    inner join months as followed_months
        on followed_months.month = {{ add_months(12, 'year_ago.month') }}
    where year_ago.mrr > 0 and {{ is_month_to_build(add_months(12, 'year_ago.month')) }}
    group by {{ add_months(12, 'year_ago.month') }}
),

months_filled as (
    select
        months.month,
        months.is_complete,
        cast(coalesce(movements_summed.starting_mrr, 0) as decimal(18, 2)) as starting_mrr,
        cast(coalesce(movements_summed.new_mrr, 0) as decimal(18, 2)) as new_mrr,
        cast(coalesce(movements_summed.expansion_mrr, 0) as decimal(18, 2)) as expansion_mrr,
        cast(coalesce(movements_summed.contraction_mrr, 0) as decimal(18, 2)) as contraction_mrr,
        cast(coalesce(movements_summed.churned_mrr, 0) as decimal(18, 2)) as churned_mrr,
        cast(coalesce(movements_summed.reactivation_mrr, 0) as decimal(18, 2)) as reactivation_mrr,
        cast(coalesce(movements_summed.fx_impact_mrr, 0) as decimal(18, 2)) as fx_impact_mrr,
        cast(coalesce(movements_summed.ending_mrr, 0) as decimal(18, 2)) as ending_mrr,
        cast(coalesce(movements_summed.starting_customers, 0) as {{ dbt.type_bigint() }}) as starting_customers,
        cast(coalesce(movements_summed.new_customers, 0) as {{ dbt.type_bigint() }}) as new_customers,
        cast(coalesce(movements_summed.churned_customers, 0) as {{ dbt.type_bigint() }}) as churned_customers,
        cast(coalesce(movements_summed.reactivated_customers, 0) as {{ dbt.type_bigint() }}) as reactivated_customers,
        cast(coalesce(movements_summed.ending_customers, 0) as {{ dbt.type_bigint() }}) as ending_customers,
        cast(coalesce(year_ago_customers_followed.mrr_12_months_ago, 0) as decimal(18, 2)) as mrr_12_months_ago,
        cast(coalesce(year_ago_customers_followed.mrr_of_customers_12_months_ago, 0) as decimal(18, 2))
            as mrr_of_customers_12_months_ago,
        cast(coalesce(year_ago_customers_followed.retained_mrr_12_months_ago, 0) as decimal(18, 2))
            as retained_mrr_12_months_ago
    from months
    left join movements_summed
        on months.month = movements_summed.month
    left join year_ago_customers_followed
        on months.month = year_ago_customers_followed.month
),

final as (
    -- doc block mrr_kpis: rates are fractions of the month's start, null when it started from nothing.
    select
        month,
        is_complete,
        starting_mrr,
        new_mrr,
        expansion_mrr,
        contraction_mrr,
        churned_mrr,
        reactivation_mrr,
        fx_impact_mrr,
        ending_mrr,
        starting_customers,
        new_customers,
        churned_customers,
        reactivated_customers,
        ending_customers,
        {{ ratio('churned_customers', 'starting_customers') }} as customer_churn_rate,
        {{ ratio('contraction_mrr + churned_mrr', 'starting_mrr') }} as gross_revenue_churn_rate,
        {{ ratio('contraction_mrr + churned_mrr - expansion_mrr', 'starting_mrr') }} as net_revenue_churn_rate,
        coalesce(expansion_mrr > contraction_mrr + churned_mrr, false) as is_negative_churn,
        {{ ratio('starting_mrr + expansion_mrr - contraction_mrr - churned_mrr', 'starting_mrr') }} as nrr,
        {{ ratio('starting_mrr - contraction_mrr - churned_mrr', 'starting_mrr') }} as grr,
        case
            when ending_customers > 0 then {{ divide_rounded('ending_mrr', 'ending_customers') }}
        end as arpa,
        {{ ratio('new_mrr + expansion_mrr + reactivation_mrr', 'contraction_mrr + churned_mrr') }} as quick_ratio,
        {{ ratio('mrr_of_customers_12_months_ago', 'mrr_12_months_ago') }} as trailing_12m_nrr,
        {{ ratio('retained_mrr_12_months_ago', 'mrr_12_months_ago') }} as trailing_12m_grr
    from months_filled
)

select * from final
