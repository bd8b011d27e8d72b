with

customers_scored as (select * from {{ ref('int_customers_scored') }}),

contacts as (select * from {{ ref('stg_crm__contacts') }}),

churns as (select * from {{ ref('int_churns_attributed_to_reasons') }}),

primary_contacts as (
    select
        customer_id,
        email,
        row_number() over (partition by customer_id order by contact_id) as contact_rank
    from contacts
    where is_primary
),

final as (
    select
        customers_scored.customer_id,
        customers_scored.name,
        customers_scored.industry,
        customers_scored.employee_count,
        {{ band('customers_scored.employee_count', var('company_size_band_bounds'), first_lower=1) }}
            as company_size_band,
        customers_scored.prefecture,
        customers_scored.country,
        customers_scored.created_at,
        customers_scored.owner_email,
        customers_scored.owner_email is not null as has_dedicated_owner,
        customers_scored.cs_owner_email,
        primary_contacts.email as primary_contact_email,
        customers_scored.status,
        customers_scored.is_paused,
        customers_scored.mrr,
        customers_scored.mrr as current_mrr,
        customers_scored.first_paid_month,
        customers_scored.tenure_months,
        customers_scored.contract_term_months,
        customers_scored.contract_end_date,
        customers_scored.next_renewal_date,
        {{ dbt.datediff(as_of_date(), 'customers_scored.next_renewal_date', 'day') }}             as days_to_renewal,  -- noqa: LT05
        customers_scored.product_count,
        customers_scored.products_held,
        customers_scored.plans_held,
        customers_scored.usage_value,
        customers_scored.plan_limit,
        customers_scored.plan_usage_ratio,
        customers_scored.customer_rank as rank,
        customers_scored.revenue_rank,
        customers_scored.mrr_share_before,
        customers_scored.growth_potential_score,
        customers_scored.plan_headroom_points,
        customers_scored.product_headroom_points,
        customers_scored.company_size_points,
        customers_scored.relationship_score,
        customers_scored.touch_recency_points,
        customers_scored.conversation_points,
        customers_scored.health_score,
        customers_scored.usage_trend_score,
        customers_scored.adoption_score,
        customers_scored.support_score,
        customers_scored.payment_score,
        customers_scored.last_touch_at,
        customers_scored.days_since_last_touch,
        customers_scored.touches_last_90_days,
        customers_scored.conversations_last_90_days,
        customers_scored.tickets_last_90_days,
        customers_scored.churned_month,
        churns.churn_reason
    from customers_scored
    left join primary_contacts
        on
            customers_scored.customer_id = primary_contacts.customer_id
            and primary_contacts.contact_rank = 1
    left join churns
        on
            customers_scored.customer_id = churns.customer_id
            and customers_scored.churned_month = churns.month
)

select * from final
