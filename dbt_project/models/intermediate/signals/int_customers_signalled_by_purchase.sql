with

subscriptions as {{ not_materialized() }} (select * from {{ ref('int_subscriptions_end_dated') }}),

invoices as (select * from {{ ref('stg_billing__invoices') }}),

invoice_customers as (
    -- invoice-based customers: invoices but no subscription at all
    select
        invoices.customer_id,
        count(distinct {{ business_date('invoices.issued_at') }}) as purchase_days,
        min({{ business_date('invoices.issued_at') }}) as first_purchase_on,
        max({{ business_date('invoices.issued_at') }}) as last_purchase_on
    from invoices
    left join subscriptions on invoices.customer_id = subscriptions.customer_id
    where
        subscriptions.customer_id is null
        and invoices.status in ('paid', 'open')
        and {{ business_date('invoices.issued_at') }} <= {{ as_of_date() }}
    group by invoices.customer_id
),

purchase_gaps_measured as (
    select
        *,
        cast({{ dbt.datediff('first_purchase_on', 'last_purchase_on', 'day') }} as {{ type_double() }})  -- noqa: LT05
        / (purchase_days - 1) as average_gap_days
    from invoice_customers
    where purchase_days >= {{ var('purchase_frequency_min_invoices') }}
),

purchase_frequency_signals as (
    select
        customer_id,
        'purchase_frequency_drop' as signal,
        cast({{ dbt.dateadd(
            'day',
            'cast(ceil(' ~ var('purchase_frequency_drop_factor') ~ ' * average_gap_days) as integer) + 1',
            'last_purchase_on'
        ) }} as date) as first_seen_on,
        cast({{ dbt.datediff('last_purchase_on', as_of_date(), 'day') }} as {{ type_double() }}) / average_gap_days  -- noqa: LT05
            as signal_value,
        cast({{ var('purchase_frequency_drop_factor') }} as {{ type_double() }}) as signal_threshold,
        cast(last_purchase_on as {{ dbt.type_string() }}) as signal_detail
    from purchase_gaps_measured
    where {{ dbt.datediff('last_purchase_on', as_of_date(), 'day') }}  -- noqa: LT02,LT05
        > {{ var('purchase_frequency_drop_factor') }} * average_gap_days
),

final as (
    select * from purchase_frequency_signals
)

select * from final
