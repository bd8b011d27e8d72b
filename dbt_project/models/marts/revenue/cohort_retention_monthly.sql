with

customer_months as (select * from {{ ref('int_mrr_movements_classified') }}),

months as (select * from {{ ref('int_months') }}),

cohorts as (
    select
        customer_id,
        first_paid_month as cohort_month,
        mrr as starting_mrr
    from customer_months
    where month = first_paid_month
),

cohorts_summarised as (
    select
        cohort_month,
        count(*) as cohort_customers,
        sum(starting_mrr) as cohort_starting_mrr
    from cohorts
    group by cohort_month
),

cohorts_spined_to_months as (
    select
        cohorts_summarised.cohort_month,
        months.month,
        months.is_complete,
        {{ dbt.datediff('cohorts_summarised.cohort_month', 'months.month', 'month') }}             as months_since_start,  -- noqa: LT05
        cohorts_summarised.cohort_customers,
        cohorts_summarised.cohort_starting_mrr
    from cohorts_summarised
    inner join months
        on cohorts_summarised.cohort_month <= months.month
),

cohort_months_summed as (
    select
        first_paid_month as cohort_month,
        month,
        sum(case when is_customer then 1 else 0 end) as active_customers,
        sum(mrr) as mrr
    from customer_months
    group by first_paid_month, month
),

final as (
    -- doc block cohort_retention
    select
        cohorts_spined_to_months.cohort_month,
        cohorts_spined_to_months.month,
        cohorts_spined_to_months.is_complete,
        cast(cohorts_spined_to_months.months_since_start as {{ dbt.type_int() }}) as months_since_start,
        cast(cohorts_spined_to_months.cohort_customers as {{ dbt.type_bigint() }}) as cohort_customers,
        cast(cohorts_spined_to_months.cohort_starting_mrr as decimal(18, 2)) as cohort_starting_mrr,
        cast(coalesce(cohort_months_summed.active_customers, 0) as {{ dbt.type_bigint() }}) as active_customers,
        cast(coalesce(cohort_months_summed.mrr, 0) as decimal(18, 2)) as mrr,
        {{ ratio('coalesce(cohort_months_summed.active_customers, 0)', 'cohorts_spined_to_months.cohort_customers') }}
            as logo_retention_rate,
        {{ ratio('coalesce(cohort_months_summed.mrr, 0)', 'cohorts_spined_to_months.cohort_starting_mrr') }}
            as net_mrr_retention_rate
    from cohorts_spined_to_months
    left join cohort_months_summed
        on
            cohorts_spined_to_months.cohort_month = cohort_months_summed.cohort_month
            and cohorts_spined_to_months.month = cohort_months_summed.month
)

select * from final
