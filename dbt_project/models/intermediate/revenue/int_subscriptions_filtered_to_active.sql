with

subscriptions as (select * from {{ ref('int_subscriptions_end_dated') }}),

active_subscriptions as (
    select * from subscriptions
    where
        start_date <= {{ as_of_date() }}
        and (effective_end_date is null or effective_end_date > {{ as_of_date() }})
),

whole_terms_counted as (
    select
        *,
        {{ integer_divide(dbt.datediff('start_date', as_of_date(), 'month'), 'contract_term_months') }}
            as whole_terms
    from active_subscriptions
),

anniversaries_found as (
    -- doc block renewal_date: the first anniversary on or after the as-of date, and never the start itself.
    select
        *,
        case
            when
                whole_terms = 0
                or {{ add_months('whole_terms * contract_term_months', 'start_date') }} < {{ as_of_date() }}
                then whole_terms + 1
            else whole_terms
        end as next_term
    from whole_terms_counted
),

final as (
    select
        subscription_id,
        customer_id,
        product,
        plan,
        status,
        {{ counted_mrr('status', 'mrr') }} as mrr,
        currency,
        contract_term_months,
        start_date,
        end_date,
        past_due_since,
        end_date is null as is_open_ended,
        coalesce(
            end_date,
            {{ add_months('next_term * contract_term_months', 'start_date') }}
        ) as renewal_on
    from anniversaries_found
)

select * from final
