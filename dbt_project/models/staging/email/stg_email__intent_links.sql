with

source as (select * from {{ source('ops', 'template_intent_links') }}),

final as (
    select
        template,
        url,
        url_prefix,
        is_prefix,
        intent,
        link_name,
        cast(declared_at as {{ dbt.type_timestamp() }}) as declared_at,
        cast(retired_at as {{ dbt.type_timestamp() }}) as retired_at
    from source
)

select * from final
