with

source as (select * from {{ source('raw', 'fx_rates') }}),

final as (
    select
        {{ month_of('month') }} as month,
        upper(trim(currency)) as currency,
        -- source contract: a blank reporting_currency is the reporting currency
        upper(trim(coalesce(reporting_currency, '{{ reporting_currency() }}'))) as reporting_currency,
        cast(rate as decimal(18, 6)) as rate,
        _source_file as source_file,
        _source_row as source_row
    from source
)

select * from final
