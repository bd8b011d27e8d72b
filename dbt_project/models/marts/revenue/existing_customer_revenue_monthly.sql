{%- set breakdowns = {'all': "'all'", 'company_size': 'company_size_band', 'tenure': 'tenure_band'} -%}
with

movements as (select * from {{ ref('int_mrr_movements_classified') }}),

customers as (select * from {{ ref('stg_crm__customers') }}),

churns as (select * from {{ ref('int_churns_attributed_to_reasons') }}),

months as (select * from {{ ref('int_months') }}),

existing_customer_months as (
    -- doc block existing_customer_revenue: customers at the start of the month, banded as they were then
    select
        movements.month,
        movements.customer_id,
        movements.previous_mrr,
        movements.mrr,
        movements.movement,
        movements.movement_mrr,
        movements.fx_impact_mrr,
        movements.is_customer,
        {{ band('customers.employee_count', var('company_size_band_bounds'), first_lower=1) }} as company_size_band,
        {{ band(dbt.datediff('movements.first_paid_month', 'movements.month', 'month'), var('tenure_band_bounds')) }}
            as tenure_band,
        coalesce(churns.churn_reason, 'unknown') as churn_reason
    from movements
    inner join customers
        on movements.customer_id = customers.customer_id
    left join churns
        on
            movements.customer_id = churns.customer_id
            and movements.month = churns.month
    where movements.was_customer
),

cells_summed as (
    -- one pass over the customer-months (17M at 1M customers) into a few thousand cells, which every breakdown
    -- sums again: four passes over them, each a hash aggregate, cost twice as much (counts and decimal sums are
    -- exact either way)
    select
        month,
        company_size_band,
        tenure_band,
        churn_reason,
        count(*) as starting_customers,
        sum(previous_mrr) as starting_mrr,
        sum(case when is_customer then 1 else 0 end) as retained_customers,
        sum(mrr) as existing_mrr,
        sum(case when movement = 'expansion' then movement_mrr else 0 end) as expansion_mrr,
        sum(case when movement = 'contraction' then -movement_mrr else 0 end) as contraction_mrr,
        sum(case when movement = 'churn' then 1 else 0 end) as churned_customers,
        sum(case when movement = 'churn' then -movement_mrr else 0 end) as churned_mrr,
        sum(fx_impact_mrr) as fx_impact_mrr
    from existing_customer_months
    group by month, company_size_band, tenure_band, churn_reason
),

bands_summed as (
    {%- for name, expression in breakdowns.items() %}
        select
            month,
            '{{ name }}' as breakdown,
            {{ expression }} as band,
            sum(starting_customers) as starting_customers,
            sum(starting_mrr) as starting_mrr,
            sum(retained_customers) as retained_customers,
            sum(existing_mrr) as existing_mrr,
            sum(expansion_mrr) as expansion_mrr,
            sum(contraction_mrr) as contraction_mrr,
            sum(churned_customers) as churned_customers,
            sum(churned_mrr) as churned_mrr,
            sum(fx_impact_mrr) as fx_impact_mrr
        from cells_summed
        group by month{% if name != 'all' %}, {{ expression }}{% endif %}
        union all
    {%- endfor %}
    select
        month,
        'cancel_reason' as breakdown,
        churn_reason as band,
        null as starting_customers,
        null as starting_mrr,
        null as retained_customers,
        null as existing_mrr,
        null as expansion_mrr,
        null as contraction_mrr,
        sum(churned_customers) as churned_customers,
        sum(churned_mrr) as churned_mrr,
        null as fx_impact_mrr
    from cells_summed
    where churned_customers > 0
    group by month, churn_reason
),

month_totals as (
    select
        month,
        starting_customers as month_starting_customers,
        starting_mrr as month_starting_mrr
    from bands_summed
    where breakdown = 'all'
),

final as (
    select
        bands_summed.month,
        months.is_complete,
        bands_summed.breakdown,
        bands_summed.band,
        cast(bands_summed.starting_customers as {{ dbt.type_bigint() }}) as starting_customers,
        cast(bands_summed.starting_mrr as decimal(18, 2)) as starting_mrr,
        cast(bands_summed.retained_customers as {{ dbt.type_bigint() }}) as retained_customers,
        cast(bands_summed.existing_mrr as decimal(18, 2)) as existing_mrr,
        cast(bands_summed.expansion_mrr as decimal(18, 2)) as expansion_mrr,
        cast(bands_summed.contraction_mrr as decimal(18, 2)) as contraction_mrr,
        cast(bands_summed.churned_customers as {{ dbt.type_bigint() }}) as churned_customers,
        cast(bands_summed.churned_mrr as decimal(18, 2)) as churned_mrr,
        cast(bands_summed.fx_impact_mrr as decimal(18, 2)) as fx_impact_mrr,
        case
            when bands_summed.retained_customers > 0
                then {{ divide_rounded('bands_summed.existing_mrr', 'bands_summed.retained_customers') }}
        end as average_mrr_per_existing_customer,
        {{ ratio('bands_summed.retained_customers', 'bands_summed.starting_customers') }} as logo_retention_rate,
        -- for cancel_reason rows, the share of all the month's starting customers lost for that reason
        {{ ratio('bands_summed.churned_customers', 'coalesce(bands_summed.starting_customers, month_totals.month_starting_customers)') }}  -- noqa: LT05
            as customer_churn_rate,
        {{ ratio('bands_summed.churned_mrr', 'coalesce(bands_summed.starting_mrr, month_totals.month_starting_mrr)') }}
            as revenue_churn_rate,
        {{ ratio(
            'bands_summed.starting_mrr + bands_summed.expansion_mrr - bands_summed.contraction_mrr - bands_summed.churned_mrr',
            'bands_summed.starting_mrr'
        ) }} as nrr,
        {{ ratio(
            'bands_summed.starting_mrr - bands_summed.contraction_mrr - bands_summed.churned_mrr',
            'bands_summed.starting_mrr'
        ) }} as grr
    from bands_summed
    inner join month_totals
        on bands_summed.month = month_totals.month
    inner join months
        on bands_summed.month = months.month
)

select * from final
