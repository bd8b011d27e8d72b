with

source as (select * from {{ source('raw', 'usage') }}),

final as (
    select
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        {{ month_of('month') }} as month,
        metric,
        value as metric_value,
        _source_file as source_file,
        _source_row as source_row
    from source
)

select * from final
