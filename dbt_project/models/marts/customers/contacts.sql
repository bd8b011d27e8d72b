with

contacts as (select * from {{ ref('stg_crm__contacts') }}),

customers as (select customer_id from {{ ref('stg_crm__customers') }}),

final as (
    select
        contacts.contact_id,
        contacts.customer_id,
        contacts.contact_name,
        contacts.role,
        contacts.is_primary,
        contacts.is_marketing_opted_in,
        contacts.marketing_consent,
        contacts.locale,
        lower(trim(contacts.email)) as email
    from contacts
    inner join customers on contacts.customer_id = customers.customer_id
)

select * from final
