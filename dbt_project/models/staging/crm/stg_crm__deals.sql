with

source as (select * from {{ source('raw', 'deals') }}),

final as (
    select
        cast(deal_id as {{ dbt.type_string() }}) as deal_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        type as deal_type,
        stage,
        amount,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(closed_at as {{ dbt.type_timestamp() }}) as closed_at,
        is_won,
        source as lead_source,
        owner_email,
        created_by_email,
        cast(handed_off_at as {{ dbt.type_timestamp() }}) as handed_off_at,
        cast(accepted_at as {{ dbt.type_timestamp() }}) as accepted_at,
        cast(rejected_at as {{ dbt.type_timestamp() }}) as rejected_at,
        cast(next_review_on as date) as next_review_on,
        _source_file as source_file,
        _source_row as source_row
    from source
)

select * from final
