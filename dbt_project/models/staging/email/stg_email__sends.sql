with

source as (select * from {{ source('ops', 'send_ledger') }}),

final as (
    select
        cast(message_key as {{ dbt.type_string() }}) as send_id,
        campaign,
        cast(contact_id as {{ dbt.type_string() }}) as contact_id,
        lower(trim(email)) as email,
        occasion,
        run_id,
        state,
        state in ('accepted', 'unknown') as is_sent,  -- doc block sent
        backend,
        provider_message_id,
        cast(claimed_at as {{ dbt.type_timestamp() }}) as claimed_at,
        cast(finished_at as {{ dbt.type_timestamp() }}) as finished_at
    from source
)

select * from final
