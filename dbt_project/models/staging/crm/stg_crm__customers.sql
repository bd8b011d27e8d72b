with

source as (select * from {{ source('raw', 'customers') }}),

final as (
    select
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        name,
        industry,
        cast(employee_count as {{ dbt.type_bigint() }}) as employee_count,
        prefecture,
        country,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        owner_email,
        cs_owner_email,
        _source_file as source_file,
        _source_row as source_row
    from source
)

select * from final
