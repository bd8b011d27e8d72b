with

deals as (select * from {{ ref('stg_crm__deals') }}),

final as (
    -- doc block inside_sales_kpis: upsell and cross-sell deals sourced by inside sales or a campaign
    select
        deal_id,
        customer_id,
        deal_type,
        lead_source,
        stage,
        is_won,
        amount,
        created_at,
        closed_at,
        owner_email,
        created_by_email,
        handed_off_at,
        accepted_at,
        rejected_at,
        {{ business_date('created_at') }} as created_on,
        {{ business_date('closed_at') }} as closed_on,
        stage in (
            '{{ var("opportunity_stages") | join("', '") }}'  -- noqa: LT05
        )
            as is_opportunity
    from deals
    where
        deal_type in ('upsell', 'cross_sell')
        and (
            lead_source in ('{{ var("inside_sales_lead_sources") | join("', '") }}')
            or lead_source like '{{ var("campaign_lead_source_prefix") }}%'
        )
        and {{ business_date('created_at') }} <= {{ as_of_date() }}
)

select * from final
