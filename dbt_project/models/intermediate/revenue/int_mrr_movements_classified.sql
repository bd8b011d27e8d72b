{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_months_to_rebuild() }}",
) }}
{#- Incremental (macros/incremental.sql, docs/incremental.md): months before var rebuild_from_month keep their rows.
    The first paid month is still found over each customer's whole history, so a rebuilt month sees it. -#}
with

customer_months as (select * from {{ ref('int_customers_mrr_by_month') }}),

customers_flagged as (
    select
        *,
        -- doc block customer_status: a paused customer stays a customer at 0 MRR. Paused can only be
        -- known for the as-of month, so last month's customers are those that paid.
        mrr > 0 or is_paused as is_customer,
        previous_mrr > 0 as was_customer
    from customer_months
),

movements_classified as (
    -- doc block mrr_movements; movement_mrr excludes fx_impact_mrr (doc block fx_conversion).
    select
        month,
        customer_id,
        first_paid_month,
        mrr,
        previous_mrr,
        fx_impact_mrr,
        is_paused,
        is_customer,
        was_customer,
        cast(mrr - previous_mrr - fx_impact_mrr as decimal(18, 2)) as movement_mrr,
        case
            when is_customer and month = first_paid_month then 'new'
            when is_customer and not was_customer then 'reactivation'
            when was_customer and not is_customer then 'churn'
            when mrr > previous_mrr + fx_impact_mrr then 'expansion'
            when mrr < previous_mrr + fx_impact_mrr then 'contraction'
            else 'none'
        end as movement
    from customers_flagged
),

final as (
    -- Keep customer months and the churn month; a lapsed customer's later zero months carry no news.
    select * from movements_classified
    where (is_customer or was_customer) and {{ is_month_to_build('month') }}
)

select * from final
