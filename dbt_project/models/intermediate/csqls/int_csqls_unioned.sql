with

crm_csqls as (select * from {{ ref('int_deals_filtered_to_csqls') }}),

intent_csqls as (select * from {{ ref('int_intent_clicks_grouped_into_csqls') }}),

final as (
    select
        'deal:' || deal_id as csql_id,
        'crm_deal' as csql_source,
        customer_id,
        deal_id,
        created_at,
        created_on,
        is_opportunity
    from crm_csqls

    union all

    select
        csql_id,
        'email_intent' as csql_source,
        customer_id,
        cast(null as {{ dbt.type_string() }}) as deal_id,
        created_at,
        created_on,
        false as is_opportunity
    from intent_csqls
    where is_counted
)

select * from final
