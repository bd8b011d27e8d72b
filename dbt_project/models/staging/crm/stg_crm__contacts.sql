with

source as (select * from {{ source('raw', 'contacts') }}),

final as (
    select
        cast(contact_id as {{ dbt.type_string() }}) as contact_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        email,
        name as contact_name,
        role,
        coalesce(is_primary, false) as is_primary,
        coalesce(marketing_opt_in, false) as is_marketing_opted_in,
        locale,
        case
            when marketing_opt_in then 'opted_in'
            when not marketing_opt_in then 'opted_out'
            else 'unknown'
        end as marketing_consent,
        _source_file as source_file,
        _source_row as source_row
    from source
)

select * from final
