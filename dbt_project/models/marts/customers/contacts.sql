with

contacts as (select * from {{ ref('stg_crm__contacts') }}),

customers as (select customer_id from {{ ref('stg_crm__customers') }}),

contacts_of_known_customers as (
    select
        contacts.*,
        max(case when contacts.is_primary then 1 else 0 end)
            over (partition by contacts.customer_id) as customer_has_primary,
        row_number() over (partition by contacts.customer_id order by contacts.contact_id) as contact_order
    from contacts
    inner join customers on contacts.customer_id = customers.customer_id
),

primaries_decided as (
    select
        *,
        -- An export without is_primary (or with none marked for a customer) must not leave
        -- `contacts: primary` campaigns nobody to mail: the customer's first contact stands in.
        case
            when customer_has_primary = 1 then is_primary
            else contact_order = 1
        end as is_primary_decided
    from contacts_of_known_customers
),

final as (
    select
        contact_id,
        customer_id,
        contact_name,
        role,
        is_primary_decided as is_primary,
        is_marketing_opted_in,
        marketing_consent,
        locale,
        lower(trim(email)) as email
    from primaries_decided
)

select * from final
