with

customers as {{ not_materialized() }} (select * from {{ ref('int_customers_scored') }}),

active_subscriptions as {{ not_materialized() }} (select * from {{ ref('int_subscriptions_filtered_to_active') }}),

subscriptions as {{ not_materialized() }} (select * from {{ ref('int_subscriptions_end_dated') }}),

active_customers as (
    select * from customers
    where status = 'active'
),

cross_sell_pairs as (
    {%- for pair in var('cross_sell_pairs') %}
    select  -- noqa: LT02
        '{{ pair.holds }}' as held_product,  -- noqa: LT02
        '{{ pair.lacks }}' as companion_product  -- noqa: LT02
    {%- if not loop.last %}
    union all  -- noqa: LT02
    {%- endif %}
    {%- endfor %}
),

held_products as (
    select
        active_subscriptions.customer_id,
        active_subscriptions.product,
        min(active_subscriptions.start_date) as held_since
    from active_subscriptions
    inner join active_customers on active_subscriptions.customer_id = active_customers.customer_id
    where active_subscriptions.mrr > 0
    group by active_subscriptions.customer_id, active_subscriptions.product
),

companions_lost as (
    -- the latest day a companion subscription ended, so a customer who dropped it enters the signal then
    select
        customer_id,
        product,
        max(effective_end_date) as lost_on
    from subscriptions
    where effective_end_date <= {{ as_of_date() }}
    group by customer_id, product
),

cross_sell_fits as (
    select
        held_products.customer_id,
        cross_sell_pairs.companion_product,
        case
            when companions_lost.lost_on > held_products.held_since then companions_lost.lost_on
            else held_products.held_since
        end as fit_since
    from held_products
    inner join cross_sell_pairs
        on held_products.product = cross_sell_pairs.held_product
    left join held_products as companions_held
        on
            held_products.customer_id = companions_held.customer_id
            and cross_sell_pairs.companion_product = companions_held.product
    left join companions_lost
        on
            held_products.customer_id = companions_lost.customer_id
            and cross_sell_pairs.companion_product = companions_lost.product
    where companions_held.customer_id is null
),

cross_sell_signals as (
    select
        customer_id,
        'cross_sell_fit' as signal,
        min(fit_since) as first_seen_on,
        cast(count(*) as {{ type_double() }}) as signal_value,
        cast(1 as {{ type_double() }}) as signal_threshold,
        {{ string_agg_distinct_sorted('companion_product', ', ') }} as signal_detail
    from cross_sell_fits
    group by customer_id
),

final as (
    select * from cross_sell_signals
)

select * from final
