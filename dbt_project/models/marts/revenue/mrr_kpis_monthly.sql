with

months as (select * from {{ ref('int_months') }}),

customer_mrr_monthly as (select * from {{ ref('customer_mrr_monthly') }}),

movements_summed as (
    select
        month,
        sum(previous_mrr) as starting_mrr,
        sum(case when movement = 'new' then movement_mrr else 0 end) as new_mrr,
        sum(case when movement = 'expansion' then movement_mrr else 0 end) as expansion_mrr,
        sum(case when movement = 'contraction' then -movement_mrr else 0 end) as contraction_mrr,
        sum(case when movement = 'churn' then -movement_mrr else 0 end) as churned_mrr,
        sum(case when movement = 'reactivation' then movement_mrr else 0 end) as reactivation_mrr,
        sum(mrr) as ending_mrr,
        sum(case when previous_mrr > 0 then 1 else 0 end) as starting_customers,
        sum(case when movement = 'new' then 1 else 0 end) as new_customers,
        sum(case when movement = 'churn' then 1 else 0 end) as churned_customers,
        sum(case when movement = 'reactivation' then 1 else 0 end) as reactivated_customers,
        sum(case when mrr > 0 then 1 else 0 end) as ending_customers
    from customer_mrr_monthly
    group by month
),

months_filled as (
    select
        months.month,
        cast(coalesce(movements_summed.starting_mrr, 0) as decimal(18, 2)) as starting_mrr,
        cast(coalesce(movements_summed.new_mrr, 0) as decimal(18, 2)) as new_mrr,
        cast(coalesce(movements_summed.expansion_mrr, 0) as decimal(18, 2)) as expansion_mrr,
        cast(coalesce(movements_summed.contraction_mrr, 0) as decimal(18, 2)) as contraction_mrr,
        cast(coalesce(movements_summed.churned_mrr, 0) as decimal(18, 2)) as churned_mrr,
        cast(coalesce(movements_summed.reactivation_mrr, 0) as decimal(18, 2)) as reactivation_mrr,
        cast(coalesce(movements_summed.ending_mrr, 0) as decimal(18, 2)) as ending_mrr,
        cast(coalesce(movements_summed.starting_customers, 0) as {{ dbt.type_bigint() }}) as starting_customers,
        cast(coalesce(movements_summed.new_customers, 0) as {{ dbt.type_bigint() }}) as new_customers,
        cast(coalesce(movements_summed.churned_customers, 0) as {{ dbt.type_bigint() }}) as churned_customers,
        cast(coalesce(movements_summed.reactivated_customers, 0) as {{ dbt.type_bigint() }}) as reactivated_customers,
        cast(coalesce(movements_summed.ending_customers, 0) as {{ dbt.type_bigint() }}) as ending_customers
    from months
    left join movements_summed
        on months.month = movements_summed.month
),

final as (
    -- doc block mrr_kpis: rates are fractions of the month's start, null when it started from nothing.
    select
        *,
        {{ ratio('churned_customers', 'starting_customers') }} as customer_churn_rate,
        {{ ratio('contraction_mrr + churned_mrr', 'starting_mrr') }} as gross_revenue_churn_rate,
        {{ ratio('contraction_mrr + churned_mrr - expansion_mrr', 'starting_mrr') }} as net_revenue_churn_rate,
        {{ ratio('starting_mrr + expansion_mrr - contraction_mrr - churned_mrr', 'starting_mrr') }} as nrr,
        {{ ratio('starting_mrr - contraction_mrr - churned_mrr', 'starting_mrr') }} as grr,
        case
            when ending_customers > 0 then cast(ending_mrr / ending_customers as decimal(18, 2))
        end as arpa
    from months_filled
)

select * from final
