with

intent_csqls as (select * from {{ ref('int_intent_clicks_grouped_into_csqls') }}),

customers as (select * from {{ ref('customers') }}),

final as (
    select
        intent_csqls.csql_id,
        intent_csqls.customer_id,
        customers.name as customer_name,
        intent_csqls.contact_id,
        intent_csqls.intent,
        intent_csqls.link_name,
        intent_csqls.url,
        intent_csqls.campaign,
        intent_csqls.run_id,
        intent_csqls.template,
        intent_csqls.send_id,
        intent_csqls.first_event_id,
        intent_csqls.created_at,
        intent_csqls.created_on,
        intent_csqls.last_clicked_at,
        intent_csqls.clicks,
        case
            when customers.has_dedicated_owner then customers.owner_email
            else '{{ var("inside_sales_queue") }}'
        end as assigned_to,
        not coalesce(customers.has_dedicated_owner, false) as is_for_inside_sales_queue,
        intent_csqls.matched_deal_id,
        intent_csqls.is_counted
    from intent_csqls
    left join customers on intent_csqls.customer_id = customers.customer_id
)

select * from final
