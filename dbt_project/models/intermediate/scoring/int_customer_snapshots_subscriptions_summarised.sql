{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_snapshots_to_rebuild() }}",
) }}
{#- What each customer pays for in a snapshot's feature month: products, main contract, renewal (docs/scores.md).
    Incremental by snapshot and customer (macros/snapshot_incremental.sql, docs/incremental.md): only the
    subscription-months of the snapshots and customers built are read. -#}
with

snapshots as (select * from {{ ref('int_scoring_snapshots') }}),

snapshots_whole as (
    {{ snapshots_to_build_whole('snapshots') }}
),

snapshot_customers_listed as (
    {{ snapshot_customers_to_build('snapshots') }}
),

months as (select * from {{ ref('int_months') }}),

subscription_months as (select * from {{ ref('int_subscriptions_spined_to_months') }}),

subscriptions as (select * from {{ ref('int_subscriptions_end_dated') }}),

listed_customers as (select distinct customer_id from snapshot_customers_listed),

listed_customers_subscriptions as (
    select subscriptions.*
    from subscriptions
    inner join listed_customers
        on subscriptions.customer_id = listed_customers.customer_id
),

listed_months as (select distinct feature_month from snapshot_customers_listed),

listed_feature_months as (
    select months.*
    from months
    inner join listed_months
        on months.month = listed_months.feature_month
),

listed_customers_spined as (
    -- the subscription-months of the listed customers only (macros/mrr_spine.sql, the view's body), not the
    -- view's every customer of every feature month
    {{ spine_subscriptions_to_months('listed_customers_subscriptions', 'listed_feature_months') }}
),

subscription_months_read as (
    -- The feature month's paying subscription-months of each row built: every customer of a snapshot built
    -- whole, the listed customers of the others (macros/snapshot_incremental.sql).
    select
        snapshots_whole.snapshot_on,
        subscription_months.customer_id,
        subscription_months.subscription_id,
        subscription_months.mrr
    from snapshots_whole
    inner join subscription_months
        on
            snapshots_whole.feature_month = subscription_months.month
            and subscription_months.mrr > 0

    union all

    select
        snapshot_customers_listed.snapshot_on,
        listed_customers_spined.customer_id,
        listed_customers_spined.subscription_id,
        listed_customers_spined.mrr
    from snapshot_customers_listed
    inner join listed_customers_spined
        on
            snapshot_customers_listed.customer_id = listed_customers_spined.customer_id
            and snapshot_customers_listed.feature_month = listed_customers_spined.month
            and listed_customers_spined.mrr > 0
),

subscriptions_held as (
    select
        subscription_months_read.snapshot_on,
        subscription_months_read.customer_id,
        subscription_months_read.subscription_id,
        subscription_months_read.mrr,
        subscriptions.product,
        subscriptions.contract_term_months,
        subscriptions.start_date,
        -- product and plan as one name for the product-mix inputs; '|' separates names in products_held
        replace(
            case
                when subscriptions.plan is null then subscriptions.product
                else subscriptions.product || ' (' || subscriptions.plan || ')'
            end,
            '|',
            '/'
        ) as product_label
    from subscription_months_read
    inner join subscriptions
        on subscription_months_read.subscription_id = subscriptions.subscription_id
),

subscriptions_ranked as (
    select
        *,
        row_number() over (
            partition by customer_id, snapshot_on
            order by mrr desc, start_date asc, subscription_id asc
        ) as subscription_rank
    from subscriptions_held
),

subscriptions_summarised as (
    -- One pass: the main subscription (rank 1) rides along in the aggregate instead of a second join.
    select
        customer_id,
        snapshot_on,
        count(distinct product) as product_count,
        {{ string_agg_distinct_sorted('product_label', '|') }} as products_held,
        max(case when subscription_rank = 1 then contract_term_months end) as contract_term_months,
        max(case when subscription_rank = 1 then start_date end) as start_date
    from subscriptions_ranked
    group by customer_id, snapshot_on
),

main_subscriptions as (
    -- The renewal is the main subscription's next anniversary: its end_date may not have been known yet.
    select
        *,
        {{ integer_divide(dbt.datediff('start_date', 'snapshot_on', 'month'), 'contract_term_months') }}
            as whole_terms
    from subscriptions_summarised
),

renewals_found as (
    select
        customer_id,
        snapshot_on,
        product_count,
        products_held,
        contract_term_months,
        case
            when {{ add_months('whole_terms * contract_term_months', 'start_date') }} < snapshot_on
                then {{ add_months('(whole_terms + 1) * contract_term_months', 'start_date') }}
            else {{ add_months('whole_terms * contract_term_months', 'start_date') }}
        end as next_renewal_on
    from main_subscriptions
),

final as (
    select
        customer_id,
        snapshot_on,
        cast(product_count as {{ dbt.type_bigint() }}) as product_count,
        products_held,
        cast(contract_term_months as {{ dbt.type_bigint() }}) as contract_term_months,
        {{ dbt.datediff('snapshot_on', 'next_renewal_on', 'day') }} as days_to_renewal  -- noqa: LT05
    from renewals_found
)

select * from final
