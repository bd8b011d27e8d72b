{%- set size_bounds = var('company_size_band_bounds') -%}
{%- set weights = var('health_weights') -%}
with

customers as (select * from {{ ref('stg_crm__customers') }}),

movements as (select * from {{ ref('int_mrr_movements_classified') }}),

active_subscriptions as {{ not_materialized() }} (select * from {{ ref('int_subscriptions_filtered_to_active') }}),

all_subscriptions as (select * from {{ ref('stg_billing__subscriptions') }}),

usage_months as (select * from {{ ref('int_usage_months_compared') }}),

touches as (select * from {{ ref('int_customers_touches_summarised') }}),

support_tickets as (select * from {{ ref('stg_crm__support_tickets') }}),

revenue_histories as (
    select
        customer_id,
        min(first_paid_month) as first_paid_month,
        sum(case when month = {{ as_of_month() }} then mrr else 0 end) as mrr,
        max(case when month = {{ as_of_month() }} and is_customer then 1 else 0 end) = 1 as is_customer,
        max(case when month = {{ as_of_month() }} and is_paused then 1 else 0 end) = 1 as is_paused,
        -- doc block tenure
        sum(case when mrr > 0 then 1 else 0 end) as tenure_months,
        max(case when movement = 'churn' then month end) as last_churn_month
    from movements
    group by customer_id
),

main_subscriptions as (
    select
        customer_id,
        contract_term_months,
        renewal_on as contract_end_date,
        row_number() over (
            partition by customer_id order by mrr desc, start_date asc, subscription_id asc
        ) as subscription_rank
    from active_subscriptions
),

subscriptions_summarised as (
    select
        customer_id,
        min(renewal_on) as next_renewal_date,
        max(case when status = 'past_due' then 1 else 0 end) = 1 as has_past_due_subscription
    from active_subscriptions
    group by customer_id
),

products_paid as (
    select distinct
        customer_id,
        product,
        plan
    from active_subscriptions
    where mrr > 0 and product is not null
),

products_held as (
    select
        customer_id,
        count(distinct product) as product_count,
        {{ string_agg_distinct_sorted('product', ', ') }} as products_held,
        {{ string_agg_distinct_sorted("product || ' ' || coalesce(plan, '')", ', ') }} as plans_held
    from products_paid
    group by customer_id
),

catalogue as (
    select count(distinct product) as catalogue_products from all_subscriptions
),

latest_usage as (
    select
        *,
        row_number() over (partition by customer_id order by month desc) as recency_rank
    from usage_months
),

tickets_summarised as (
    select
        customer_id,
        sum(
            case
                when {{ business_date('created_at') }} > {{ dbt.dateadd('day', -90, as_of_date()) }} then 1 else 0
            end
        ) as tickets_last_90_days
    from support_tickets
    where {{ business_date('created_at') }} <= {{ as_of_date() }}
    group by customer_id
),

customers_joined as (
    select
        customers.customer_id,
        customers.name,
        customers.industry,
        customers.employee_count,
        customers.prefecture,
        customers.country,
        customers.created_at,
        customers.owner_email,
        customers.cs_owner_email,
        revenue_histories.first_paid_month,
        cast(coalesce(revenue_histories.mrr, 0) as decimal(18, 2)) as mrr,
        -- doc block customer_status
        case
            when revenue_histories.is_customer then 'active'
            when revenue_histories.first_paid_month is not null then 'churned'
            else 'never_paid'
        end as status,
        coalesce(revenue_histories.is_paused, false) as is_paused,
        case when not revenue_histories.is_customer then revenue_histories.last_churn_month end as churned_month,
        cast(coalesce(revenue_histories.tenure_months, 0) as {{ dbt.type_bigint() }}) as tenure_months,
        main_subscriptions.contract_term_months,
        main_subscriptions.contract_end_date,
        subscriptions_summarised.next_renewal_date,
        coalesce(subscriptions_summarised.has_past_due_subscription, false) as has_past_due_subscription,
        cast(coalesce(products_held.product_count, 0) as {{ dbt.type_bigint() }}) as product_count,
        products_held.products_held,
        products_held.plans_held,
        cast(catalogue.catalogue_products - coalesce(products_held.product_count, 0) as {{ dbt.type_bigint() }})
            as products_not_held,
        catalogue.catalogue_products,
        latest_usage.month as usage_month,
        latest_usage.usage_value,
        latest_usage.trailing_3_month_average as usage_trailing_3_month_average,
        latest_usage.plan_limit,
        latest_usage.plan_usage_ratio,
        touches.last_touch_at,
        {{ dbt.datediff(business_date('touches.last_touch_at'), as_of_date(), 'day') }}             as days_since_last_touch,  -- noqa: LT05
        coalesce(touches.touches_last_90_days, 0) as touches_last_90_days,
        coalesce(touches.conversations_last_90_days, 0) as conversations_last_90_days,
        coalesce(tickets_summarised.tickets_last_90_days, 0) as tickets_last_90_days
    from customers
    cross join catalogue
    left join revenue_histories
        on customers.customer_id = revenue_histories.customer_id
    left join main_subscriptions
        on
            customers.customer_id = main_subscriptions.customer_id
            and main_subscriptions.subscription_rank = 1
    left join subscriptions_summarised
        on customers.customer_id = subscriptions_summarised.customer_id
    left join products_held
        on customers.customer_id = products_held.customer_id
    left join latest_usage
        on
            customers.customer_id = latest_usage.customer_id
            and latest_usage.recency_rank = 1
    left join touches
        on customers.customer_id = touches.customer_id
    left join tickets_summarised
        on customers.customer_id = tickets_summarised.customer_id
),

revenue_shares as (
    -- doc block customer_rank: the revenue axis, over active customers, largest MRR first (on the two columns it
    -- reads: a window carries every column of its input through its sort)
    select
        customer_id,
        cast(coalesce(
            sum(mrr) over (
                order by mrr desc, customer_id asc
                rows between unbounded preceding and 1 preceding
            ),
            0
        ) as {{ type_double() }}) / nullif(sum(mrr) over (), 0) as mrr_share_before
    from customers_joined
    where status = 'active'
),

revenue_shares_computed as (
    select
        customers_joined.*,
        revenue_shares.mrr_share_before
    from customers_joined
    left join revenue_shares
        on customers_joined.customer_id = revenue_shares.customer_id
),

components_scored as (
    select
        *,
        case
            when status <> 'active' then null
            when mrr_share_before < {{ var('rank_a_mrr_share') }} then 'A'
            when mrr_share_before < {{ var('rank_b_mrr_share') }} then 'B'
            else 'C'
        end as revenue_rank,
        case
            when plan_usage_ratio is null then 50
            else {{ clamp_score('100 * plan_usage_ratio') }}
        end as plan_headroom_points,
        {{ clamp_score('100.0 * products_not_held / nullif(catalogue_products, 0)') }} as product_headroom_points,
        case
            when employee_count is null then 50
            {%- for bound in size_bounds %}
                when employee_count < {{ bound }} then {{ (100 * loop.index / (size_bounds | length + 1)) | int }}
            {%- endfor %}
            else 100
        end as company_size_points,
        case
            when days_since_last_touch is null then 0
            else {{ clamp_score('100 - 100.0 * days_since_last_touch / 180') }}
        end as touch_recency_points,
        {{ clamp_score('25 * conversations_last_90_days') }} as conversation_points,
        case
            when usage_trailing_3_month_average > 0
                then {{ clamp_score('100 * usage_value / usage_trailing_3_month_average') }}
            else 50
        end as usage_trend_score,
        case
            when plan_usage_ratio is null then 50
            else {{ clamp_score('100 * plan_usage_ratio / ' ~ var('near_plan_limit_ratio')) }}
        end as adoption_score,
        {{ clamp_score('100 - 20 * tickets_last_90_days') }} as support_score,
        case when has_past_due_subscription then 0 else 100 end as payment_score
    from revenue_shares_computed
),

axes_scored as (
    select
        *,
        {{ clamp_score('(plan_headroom_points + product_headroom_points + company_size_points) / 3.0') }}
            as growth_potential_score,
        {{ clamp_score('(touch_recency_points + conversation_points) / 2.0') }} as relationship_score
    from components_scored
),

final as (
    select
        *,
        -- doc block customer_rank: one letter up when both growth potential and relationship are strong
        case
            when revenue_rank is null then null
            when
                growth_potential_score >= {{ var('rank_promotion_min_growth_score') }}
                and relationship_score >= {{ var('rank_promotion_min_relationship_score') }}
                and revenue_rank <> 'A'
                then case when revenue_rank = 'B' then 'A' else 'B' end
            else revenue_rank
        end as customer_rank,
        -- doc block health_score
        {{ clamp_score(
            '(' ~ weights.usage_trend ~ ' * usage_trend_score + ' ~ weights.adoption ~ ' * adoption_score + '
            ~ weights.support ~ ' * support_score + ' ~ weights.relationship ~ ' * relationship_score + '
            ~ weights.payment ~ ' * payment_score) / '
            ~ (weights.usage_trend + weights.adoption + weights.support + weights.relationship + weights.payment)
        ) }} as health_score
    from axes_scored
)

select * from final
