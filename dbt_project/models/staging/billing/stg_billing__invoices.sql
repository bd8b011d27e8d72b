with

source as (select * from {{ source('raw', 'invoices') }}),

final as (
    select
        cast(invoice_id as {{ dbt.type_string() }}) as invoice_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(subscription_id as {{ dbt.type_string() }}) as subscription_id,
        cast(issued_at as {{ dbt.type_timestamp() }}) as issued_at,
        cast(period_start as date) as period_start,
        cast(period_end as date) as period_end,
        amount,
        tax,
        upper(trim(coalesce(currency, 'JPY'))) as currency,
        status,
        _source_file as source_file,
        _source_row as source_row
    from source
)

select * from final
