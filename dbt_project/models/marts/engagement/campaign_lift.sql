{#- Doc block campaign_lift: treatment against holdout, per campaign (and run), breakdown and window, with the
    lift and its 95% confidence interval (normal approximation). -#}
{%- set windows = var('campaign_lift_windows_days') -%}
{%- set z = 1.959963984540054 -%}
{%- set min_holdout = var('lift_min_holdout_customers') -%}
{%- set breakdowns = {
    'all': "'all'",
    'locale': "coalesce(locale, 'unknown')",
    'rank': "coalesce(rank_at_selection, 'unknown')",
} -%}

with

measured as (select * from {{ ref('int_campaign_customers_measured') }}),

exposures_per_window as (
    {%- for w in windows %}
        select
            campaign,
            run_id,
            exposure_group,
            first_selected_on,
            locale,
            rank_at_selection,
            is_first_in_campaign,
            {{ w }} as window_days,
            is_measured_{{ w }}d as is_measured,
            has_csql_{{ w }}d as has_csql,
            expansion_mrr_{{ w }}d as expansion_mrr
        from measured
        {%- if not loop.last %}
        union all  -- noqa: LT02
        {%- endif %}
    {%- endfor %}
),

exposures_scoped as (
    -- a run: the customers whose group it formed; a campaign: each customer once, at its first exposure
    select
        'run' as scope,
        campaign,
        run_id,
        exposure_group,
        first_selected_on,
        locale,
        rank_at_selection,
        is_first_in_campaign,
        window_days,
        is_measured,
        has_csql,
        expansion_mrr
    from exposures_per_window

    union all

    select
        'campaign' as scope,
        campaign,
        cast(null as {{ dbt.type_string() }}) as run_id,
        exposure_group,
        first_selected_on,
        locale,
        rank_at_selection,
        is_first_in_campaign,
        window_days,
        is_measured,
        has_csql,
        expansion_mrr
    from exposures_per_window
    where is_first_in_campaign
),

exposures_sliced as (
    {%- for name, value in breakdowns.items() %}
        select
            campaign,
            scope,
            run_id,
            '{{ name }}' as breakdown,
            {{ value }} as breakdown_value,
            window_days,
            exposure_group,
            first_selected_on,
            is_measured,
            has_csql,
            expansion_mrr
        from exposures_scoped
        {%- if not loop.last %}
        union all  -- noqa: LT02
        {%- endif %}
    {%- endfor %}
),

groups_summarised as (
    select
        campaign,
        scope,
        run_id,
        breakdown,
        breakdown_value,
        window_days,
        exposure_group,
        min(first_selected_on) as first_selected_on,
        max(first_selected_on) as last_selected_on,
        cast(sum(case when is_measured then 1 else 0 end) as {{ dbt.type_bigint() }}) as customers,
        cast(sum(case when is_measured then 0 else 1 end) as {{ dbt.type_bigint() }}) as customers_waiting,
        cast(sum(case when is_measured and has_csql then 1 else 0 end) as {{ dbt.type_bigint() }})
            as customers_with_csql,
        cast(sum(case when is_measured and expansion_mrr > 0 then 1 else 0 end) as {{ dbt.type_bigint() }})
            as customers_with_expansion,
        coalesce(sum(case when is_measured then expansion_mrr end), 0) as expansion_mrr,
        -- exact decimal sums, so the variance below does not depend on the order rows are added in
        coalesce(sum(case when is_measured then expansion_mrr * expansion_mrr end), 0) as expansion_mrr_squared
    from exposures_sliced
    group by campaign, scope, run_id, breakdown, breakdown_value, window_days, exposure_group
),

groups_with_variances as (
    -- sample variance s² = (n·Σx² − (Σx)²) / (n(n − 1)), the numerator exact; null below 2 customers
    select
        *,
        case
            when customers >= 2
                then
                    cast(customers * expansion_mrr_squared - expansion_mrr * expansion_mrr as {{ type_double() }})
                    / (customers * (customers - 1))
        end as expansion_mrr_variance
    from groups_summarised
),

groups_side_by_side as (
    select
        campaign,
        scope,
        run_id,
        breakdown,
        breakdown_value,
        window_days,
        min(first_selected_on) as first_selected_on,
        max(last_selected_on) as last_selected_on,
        coalesce(max(case when exposure_group = 'treatment' then customers end), 0) as treatment_customers,
        coalesce(max(case when exposure_group = 'treatment' then customers_waiting end), 0)
            as treatment_customers_waiting,
        coalesce(max(case when exposure_group = 'treatment' then customers_with_csql end), 0)
            as treatment_customers_with_csql,
        coalesce(max(case when exposure_group = 'treatment' then customers_with_expansion end), 0)
            as treatment_customers_with_expansion,
        coalesce(max(case when exposure_group = 'treatment' then expansion_mrr end), 0) as treatment_expansion_mrr,
        max(case when exposure_group = 'treatment' then expansion_mrr_variance end) as treatment_expansion_mrr_variance,
        coalesce(max(case when exposure_group = 'holdout' then customers end), 0) as holdout_customers,
        coalesce(max(case when exposure_group = 'holdout' then customers_waiting end), 0) as holdout_customers_waiting,
        coalesce(max(case when exposure_group = 'holdout' then customers_with_csql end), 0)
            as holdout_customers_with_csql,
        coalesce(max(case when exposure_group = 'holdout' then customers_with_expansion end), 0)
            as holdout_customers_with_expansion,
        coalesce(max(case when exposure_group = 'holdout' then expansion_mrr end), 0) as holdout_expansion_mrr,
        max(case when exposure_group = 'holdout' then expansion_mrr_variance end) as holdout_expansion_mrr_variance
    from groups_with_variances
    group by campaign, scope, run_id, breakdown, breakdown_value, window_days
),

groups_compared as (
    select
        *,
        {{ ratio('treatment_customers_with_csql', 'treatment_customers') }} as treatment_csql_rate,
        {{ ratio('holdout_customers_with_csql', 'holdout_customers') }} as holdout_csql_rate,
        {{ ratio('treatment_expansion_mrr', 'treatment_customers') }} as treatment_expansion_mrr_per_customer,
        {{ ratio('holdout_expansion_mrr', 'holdout_customers') }} as holdout_expansion_mrr_per_customer,
        holdout_customers < {{ min_holdout }} as is_holdout_too_small
    from groups_side_by_side
),

lifts as (
    select
        *,
        treatment_csql_rate - holdout_csql_rate as csql_rate_lift,
        sqrt(
            treatment_csql_rate * (1 - treatment_csql_rate) / treatment_customers
            + holdout_csql_rate * (1 - holdout_csql_rate) / holdout_customers
        ) as csql_rate_lift_standard_error,
        treatment_expansion_mrr_per_customer - holdout_expansion_mrr_per_customer as expansion_mrr_per_customer_lift,
        sqrt(
            treatment_expansion_mrr_variance / treatment_customers
            + holdout_expansion_mrr_variance / holdout_customers
        ) as expansion_mrr_per_customer_lift_standard_error
    from groups_compared
),

final as (
    select
        campaign,
        scope,
        run_id,
        breakdown,
        breakdown_value,
        window_days,
        first_selected_on,
        last_selected_on,
        treatment_customers,
        holdout_customers,
        treatment_customers_waiting,
        holdout_customers_waiting,
        treatment_customers_with_csql,
        holdout_customers_with_csql,
        treatment_customers_with_expansion,
        holdout_customers_with_expansion,
        treatment_csql_rate,
        holdout_csql_rate,
        csql_rate_lift,
        case when not is_holdout_too_small then csql_rate_lift - {{ z }} * csql_rate_lift_standard_error end
            as csql_rate_lift_ci_low,
        case when not is_holdout_too_small then csql_rate_lift + {{ z }} * csql_rate_lift_standard_error end
            as csql_rate_lift_ci_high,
        cast(treatment_expansion_mrr as decimal(18, 2)) as treatment_expansion_mrr,
        cast(holdout_expansion_mrr as decimal(18, 2)) as holdout_expansion_mrr,
        treatment_expansion_mrr_per_customer,
        holdout_expansion_mrr_per_customer,
        expansion_mrr_per_customer_lift,
        case
            when not is_holdout_too_small
                then expansion_mrr_per_customer_lift - {{ z }} * expansion_mrr_per_customer_lift_standard_error
        end as expansion_mrr_per_customer_lift_ci_low,
        case
            when not is_holdout_too_small
                then expansion_mrr_per_customer_lift + {{ z }} * expansion_mrr_per_customer_lift_standard_error
        end as expansion_mrr_per_customer_lift_ci_high,
        is_holdout_too_small,
        not is_holdout_too_small
        and least(
            treatment_customers_with_csql,
            treatment_customers - treatment_customers_with_csql,
            holdout_customers_with_csql,
            holdout_customers - holdout_customers_with_csql
        ) >= 5 as is_csql_rate_ci_reliable,
        -- expansion is rare and lumpy: a group with few expanding customers has a variance that says little
        not is_holdout_too_small
        and least(treatment_customers_with_expansion, holdout_customers_with_expansion) >= 5
            as is_expansion_mrr_ci_reliable
    from lifts
)

select * from final
