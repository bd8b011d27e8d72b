with

movements as (select * from {{ ref('int_mrr_movements_classified') }}),

subscriptions as (select * from {{ ref('int_subscriptions_end_dated') }}),

months as (select * from {{ ref('int_months') }}),

churns as (
    select
        movements.customer_id,
        movements.month,
        months_before.month as previous_month
    from movements
    inner join months as months_before
        on movements.month = {{ add_months(1, 'months_before.month') }}
    where movements.movement = 'churn'
),

churned_customer_months_before as (
    -- each churn's month before, for its customer alone: the spine below meets only these (customer, month)
    -- pairs, not every subscription and month (the spine of every customer was 20M rows at 1M customers)
    select
        churns.customer_id,
        churns.month as churn_month,
        months.month,
        months.snapshot_on,
        months.is_as_of_month
    from churns
    inner join months
        on churns.previous_month = months.month
),

subscription_months_before as (
    -- the subscriptions counted the month before the churn month (none of them counts in it)
    {{ spine_subscriptions_to_months('subscriptions', 'churned_customer_months_before', by_customer=true) }}
),

lost_subscriptions as (
    select
        churns.customer_id,
        churns.month,
        subscriptions.subscription_id,
        subscriptions.cancel_reason,
        subscriptions.is_past_due_beyond_limit,
        subscription_months_before.mrr
    from churns
    inner join subscription_months_before
        on
            churns.customer_id = subscription_months_before.customer_id
            and churns.previous_month = subscription_months_before.month
    inner join subscriptions
        on subscription_months_before.subscription_id = subscriptions.subscription_id
),

reasons_ranked as (
    -- doc block churn_reason: the reason of the largest lost subscription that gives one.
    select
        customer_id,
        month,
        case
            when cancel_reason is not null and trim(cancel_reason) <> '' then cancel_reason
            when is_past_due_beyond_limit then 'past_due'
        end as churn_reason,
        row_number() over (
            partition by customer_id, month
            order by
                case
                    when (cancel_reason is not null and trim(cancel_reason) <> '') or is_past_due_beyond_limit then 0
                    else 1
                end asc,
                mrr desc,
                subscription_id asc
        ) as reason_rank
    from lost_subscriptions
),

final as (
    select
        churns.customer_id,
        churns.month,
        coalesce(reasons_ranked.churn_reason, 'unknown') as churn_reason
    from churns
    left join reasons_ranked
        on
            churns.customer_id = reasons_ranked.customer_id
            and churns.month = reasons_ranked.month
            and reasons_ranked.reason_rank = 1
)

select * from final
