with

subscriptions as (select * from {{ ref('stg_billing__subscriptions') }}),

invoices as {{ not_materialized() }} (select * from {{ ref('stg_billing__invoices') }}),

last_paid_invoices as (
    select
        subscription_id,
        max(issued_at) as last_paid_at
    from invoices
    where status = 'paid' and subscription_id is not null
    group by subscription_id
),

unpaid_since_found as (
    -- doc block past_due: the oldest invoice still open after the last paid one, issued by the as-of date.
    select
        invoices.subscription_id,
        min({{ business_date('invoices.issued_at') }}) as past_due_since
    from invoices
    left join last_paid_invoices
        on invoices.subscription_id = last_paid_invoices.subscription_id
    where
        invoices.status = 'open'
        and {{ business_date('invoices.issued_at') }} <= {{ as_of_date() }}
        and (last_paid_invoices.last_paid_at is null or invoices.issued_at > last_paid_invoices.last_paid_at)
    group by invoices.subscription_id
),

past_due_dated as (
    select
        subscriptions.*,
        case when subscriptions.status = 'past_due' then unpaid_since_found.past_due_since end as past_due_since
    from subscriptions
    left join unpaid_since_found
        on subscriptions.subscription_id = unpaid_since_found.subscription_id
),

past_due_limits_found as (
    select
        *,
        cast({{ dbt.dateadd('day', var('past_due_churn_days'), 'past_due_since') }} as date) as past_due_churn_on
    from past_due_dated
),

final as (
    select
        subscription_id,
        customer_id,
        start_date,
        end_date,
        -- doc block past_due: a past_due subscription ends when its grace period runs out.
        case
            when past_due_churn_on is not null and (end_date is null or past_due_churn_on < end_date)
                then past_due_churn_on
            else end_date
        end as effective_end_date,
        past_due_since,
        coalesce(past_due_churn_on <= {{ as_of_date() }}, false) as is_past_due_beyond_limit,
        product,
        plan,
        quantity,
        plan_limit,
        status,
        cancel_reason,
        currency,
        mrr,
        contract_term_months
    from past_due_limits_found
)

select * from final
