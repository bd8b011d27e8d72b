{#- Doc block campaign_lift: CSQLs and expansion MRR of each treatment and holdout customer within each
    window after its start (day 0 = start_on through day N), and whether the window is over. -#}
{%- set windows = var('campaign_lift_windows_days') -%}

with

exposures as (
    select * from {{ ref('int_campaign_customers_exposed') }}
    where exposure_group in ('treatment', 'holdout')
),

csqls as (select * from {{ ref('int_csqls_unioned') }}),

customer_months as (select * from {{ ref('customer_mrr_monthly') }}),

csqls_per_exposure as (
    select
        exposures.campaign,
        exposures.customer_id,
        exposures.occasion,
    {%- for w in windows %}
        sum(
            case
                when csqls.created_on <= cast({{ dbt.dateadd('day', w, 'exposures.start_on') }} as date) then 1
                else 0
            end
        ) as csqls_{{ w }}d{{ "," if not loop.last }}  -- noqa: LT02
    {%- endfor %}
    from exposures
    inner join csqls
        on
            exposures.customer_id = csqls.customer_id
            and exposures.start_on <= csqls.created_on
            and csqls.created_on <= cast({{ dbt.dateadd('day', windows | max, 'exposures.start_on') }} as date)
    group by exposures.campaign, exposures.customer_id, exposures.occasion
),

expansion_per_exposure as (
    -- doc block campaign_lift: the expansion of the months that begin within the window (month granularity)
    select
        exposures.campaign,
        exposures.customer_id,
        exposures.occasion,
    {%- for w in windows %}
        sum(
            case
                when customer_months.month <= cast({{ dbt.dateadd('day', w, 'exposures.start_on') }} as date)
                    then customer_months.movement_mrr
                else 0
            end
        ) as expansion_mrr_{{ w }}d{{ "," if not loop.last }}  -- noqa: LT02
    {%- endfor %}
    from exposures
    inner join customer_months
        on
            exposures.customer_id = customer_months.customer_id
            and customer_months.movement = 'expansion'
            and exposures.start_on <= customer_months.month
            and customer_months.month <= cast({{ dbt.dateadd('day', windows | max, 'exposures.start_on') }} as date)
    group by exposures.campaign, exposures.customer_id, exposures.occasion
),

final as (
    select
        exposures.campaign,
        exposures.customer_id,
        exposures.occasion,
        exposures.run_id,
        exposures.exposure_group,
        exposures.first_selected_on,
        exposures.start_on,
        exposures.locale,
        exposures.rank_at_selection,
        exposures.is_first_in_campaign,
    {%- for w in windows %}
        -- the window's CSQL days and the last month whose expansion it counts are over by the as-of date
        {{ add_months(1, month_of(dbt.dateadd('day', w, 'exposures.start_on'))) }} <= {{ as_of_date() }}
            as is_measured_{{ w }}d,
        coalesce(csqls_per_exposure.csqls_{{ w }}d, 0) as csqls_{{ w }}d,
        coalesce(csqls_per_exposure.csqls_{{ w }}d, 0) > 0 as has_csql_{{ w }}d,
        cast(coalesce(expansion_per_exposure.expansion_mrr_{{ w }}d, 0) as decimal(18, 2))
            as expansion_mrr_{{ w }}d{{ "," if not loop.last }}  -- noqa: LT02
{%- endfor %}
    from exposures
    left join csqls_per_exposure
        on
            exposures.campaign = csqls_per_exposure.campaign
            and exposures.customer_id = csqls_per_exposure.customer_id
            and exposures.occasion = csqls_per_exposure.occasion
    left join expansion_per_exposure
        on
            exposures.campaign = expansion_per_exposure.campaign
            and exposures.customer_id = expansion_per_exposure.customer_id
            and exposures.occasion = expansion_per_exposure.occasion
)

select * from final
