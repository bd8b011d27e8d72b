with

subscriptions as (select * from {{ ref('stg_billing__subscriptions') }}),

months as (select * from {{ ref('int_months') }}),

subscriptions_spined_to_months as (
    select
        months.month,
        subscriptions.subscription_id,
        subscriptions.customer_id,
        subscriptions.product,
        subscriptions.plan,
        subscriptions.status,
        subscriptions.currency,
        -- doc block month_counting; an open-ended subscription (end_date null) runs to the as-of month.
        {{ counted_mrr('subscriptions.status', 'subscriptions.mrr') }} as mrr
    from subscriptions
    inner join months
        on
            subscriptions.start_date <= months.snapshot_on
            and (subscriptions.end_date is null or subscriptions.end_date > months.snapshot_on)
),

final as (
    select * from subscriptions_spined_to_months
)

select * from final
