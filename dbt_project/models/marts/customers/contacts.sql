with

contacts as (select * from {{ ref('stg_crm__contacts') }}),

customers as (select customer_id from {{ ref('stg_crm__customers') }}),

customer_contacts as (
    -- per known customer: whether a contact is marked primary, and its first contact (contact_id is unique and
    -- not null): one aggregate on two columns rather than two windows sorting every column of every contact
    select
        contacts.customer_id,
        max(case when contacts.is_primary then 1 else 0 end) as customer_has_primary,
        min(contacts.contact_id) as first_contact_id
    from contacts
    inner join customers on contacts.customer_id = customers.customer_id
    group by contacts.customer_id
),

primaries_decided as (
    select
        contacts.*,
        -- An export without is_primary (or with none marked for a customer) must not leave
        -- `contacts: primary` campaigns nobody to mail: the customer's first contact stands in.
        case
            when customer_contacts.customer_has_primary = 1 then contacts.is_primary
            else contacts.contact_id = customer_contacts.first_contact_id
        end as is_primary_decided
    from contacts
    inner join customer_contacts on contacts.customer_id = customer_contacts.customer_id
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
