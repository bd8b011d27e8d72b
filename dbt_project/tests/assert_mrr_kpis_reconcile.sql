-- Every month's MRR bridge closes (fx_impact included, doc block mrr_kpis), each month starts where the
-- previous one ended, and the KPIs agree with the customer-months they summarise.
-- Returns the months that do not.
with

mrr_kpis_monthly as (select * from {{ ref('mrr_kpis_monthly') }}),

customer_mrr_monthly as (select * from {{ ref('customer_mrr_monthly') }}),

customer_mrr_summed as (
    select
        month,
        sum(mrr) as summed_mrr
    from customer_mrr_monthly
    group by month
),

previous_months_joined as (
    select
        *,
        lag(ending_mrr) over (order by month) as previous_ending_mrr
    from mrr_kpis_monthly
),

final as (
    select
        previous_months_joined.month,
        previous_months_joined.starting_mrr,
        previous_months_joined.previous_ending_mrr,
        previous_months_joined.ending_mrr,
        coalesce(customer_mrr_summed.summed_mrr, 0) as summed_mrr
    from previous_months_joined
    left join customer_mrr_summed
        on previous_months_joined.month = customer_mrr_summed.month
    where
        previous_months_joined.starting_mrr
        + previous_months_joined.new_mrr
        + previous_months_joined.expansion_mrr
        + previous_months_joined.reactivation_mrr
        - previous_months_joined.contraction_mrr
        - previous_months_joined.churned_mrr
        + previous_months_joined.fx_impact_mrr
        <> previous_months_joined.ending_mrr
        or coalesce(customer_mrr_summed.summed_mrr, 0) <> previous_months_joined.ending_mrr
        or previous_months_joined.starting_mrr <> coalesce(previous_months_joined.previous_ending_mrr, 0)
        or previous_months_joined.starting_customers
        + previous_months_joined.new_customers
        + previous_months_joined.reactivated_customers
        - previous_months_joined.churned_customers
        <> previous_months_joined.ending_customers
)

select * from final
