with

source as (select * from {{ source('raw', 'activities') }}),

final as (
    select
        cast(activity_id as {{ dbt.type_string() }}) as activity_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        type as activity_type,
        cast(occurred_at as {{ dbt.type_timestamp() }}) as occurred_at,
        owner_email,
        outcome,
        cast(next_review_on as date) as next_review_on,
        _source_file as source_file,
        _source_row as source_row
    from source
)

select * from final
