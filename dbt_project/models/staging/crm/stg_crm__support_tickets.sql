with

source as (select * from {{ source('raw', 'support_tickets') }}),

final as (
    select
        cast(ticket_id as {{ dbt.type_string() }}) as ticket_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        category,
        _source_file as source_file,
        _source_row as source_row
    from source
)

select * from final
