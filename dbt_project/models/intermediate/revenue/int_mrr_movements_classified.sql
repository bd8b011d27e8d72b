{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_months_to_rebuild(by_customer=true) }}",
) }}
{#- Incremental (macros/incremental.sql, docs/incremental.md): months before var rebuild_from_month keep their rows.
    A full build reads the int_customers_mrr_by_month view; an incremental one computes the same columns for the
    months it rebuilds only (and the month before, for last month's MRR) with the view's macros
    (macros/mrr_spine.sql), the first paid month taken from the rows it keeps. Rebuilt by customer (a merge or a
    backdated change reaching far back): every customer from the last closed month, and the customers of
    rebuild_customers() from their own month. dbt parses with is_incremental() false, so the refs of that branch
    are declared here: -#}
-- depends_on: {{ ref('int_subscriptions_end_dated') }}
-- depends_on: {{ ref('int_months') }}
-- depends_on: {{ ref('int_fx_rates_spined_to_months') }}
with

rebuild_customers as ({{ rebuild_customers() }}),

{% if is_incremental_build() %}

last_kept_month as (select max(month) as month from {{ this }}),

months as (
    select * from {{ ref('int_months') }}
    where
        (select month from last_kept_month) is null
        or month >= (select month from last_kept_month)
),

subscriptions as (select * from {{ ref('int_subscriptions_end_dated') }}),

{% if rebuild_all_customers_from_iso() is not none %}

all_months as (select * from {{ ref('int_months') }}),

rebuilt_customers_subscriptions as (
    select * from subscriptions
    where customer_id in (select rebuild_customers.customer_id from rebuild_customers)
),

rebuilt_customers_spined as (
    {{ spine_subscriptions_to_months('rebuilt_customers_subscriptions', 'all_months') }}
),

rebuilt_customer_months as (
    -- a rebuilt customer's months before those every customer rebuilds, from the month before its own (for
    -- last month's MRR)
    select rebuilt_customers_spined.*
    from rebuilt_customers_spined
    inner join rebuild_customers
        on rebuilt_customers_spined.customer_id = rebuild_customers.customer_id
    where
        rebuilt_customers_spined.month >= {{ add_months(-1, 'rebuild_customers.month') }}
        and rebuilt_customers_spined.month < (select month from last_kept_month)
),

{% endif %}

fx_rates as (select * from {{ ref('int_fx_rates_spined_to_months') }}),

kept_first_paid_months as (
    select
        customer_id,
        min(first_paid_month) as first_paid_month
    from {{ this }}
    group by customer_id
),

subscription_months as (
    {{ spine_subscriptions_to_months('subscriptions', 'months') }}
    {% if rebuild_all_customers_from_iso() is not none %}
        union all
        select * from rebuilt_customer_months
    {% endif %}
),

customers_summed as (
    {{ sum_customers_mrr('subscription_months', 'fx_rates') }}
),

first_paid_months_found as (
    -- doc block first_paid_month: a customer with rows kept paid first there (the months kept did not change);
    -- else in the months rebuilt.
    select
        customers_summed.*,
        coalesce(
            kept_first_paid_months.first_paid_month,
            min(case when customers_summed.mrr > 0 then customers_summed.month end)
                over (partition by customers_summed.customer_id)
        ) as first_paid_month
    from customers_summed
    left join kept_first_paid_months on customers_summed.customer_id = kept_first_paid_months.customer_id
),

customer_months as (
    select * from first_paid_months_found
    where month >= first_paid_month
),

{% else %}

    customer_months as (select * from {{ ref('int_customers_mrr_by_month') }}),

{% endif %}

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
    select movements_classified.*
    from movements_classified
    left join rebuild_customers on movements_classified.customer_id = rebuild_customers.customer_id
    where
        (movements_classified.is_customer or movements_classified.was_customer)
        and (
            {{ is_month_to_build('movements_classified.month') }}
            or movements_classified.month >= rebuild_customers.month
        )
)

select * from final
