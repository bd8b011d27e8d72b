{#- Engagement of each run's sends, and the run's result against its holdout (doc block campaign_lift). -#}
{%- set lift_columns = [
    'treatment_customers', 'holdout_customers', 'treatment_csql_rate', 'holdout_csql_rate', 'csql_rate_lift',
    'csql_rate_lift_ci_low', 'csql_rate_lift_ci_high', 'treatment_expansion_mrr_per_customer',
    'holdout_expansion_mrr_per_customer', 'expansion_mrr_per_customer_lift', 'expansion_mrr_per_customer_lift_ci_low',
    'expansion_mrr_per_customer_lift_ci_high', 'is_holdout_too_small', 'is_csql_rate_ci_reliable',
    'is_expansion_mrr_ci_reliable'] -%}
{#- (window, column, how one row per run and breakdown picks it: max for numbers, bool_or for flags) -#}
{%- set lift_outputs = [] -%}
{%- for w in var('campaign_lift_windows_days') -%}
    {%- for column in lift_columns -%}
        {%- do lift_outputs.append((w, column, 'bool_or' if column.startswith('is_') else 'max')) -%}
    {%- endfor -%}
{%- endfor -%}

with

email_sends as (select * from {{ ref('email_sends') }}),

campaign_lift as (select * from {{ ref('campaign_lift') }}),

sends_counted_per_run as (
    select
        campaign,
        run_id,
        template,
        locale,
        count(*) as sent,
        sum(case when delivered_at is not null then 1 else 0 end) as delivered,
        sum(case when first_human_open_at is not null then 1 else 0 end) as human_openers,
        sum(case when first_human_click_at is not null then 1 else 0 end) as human_clickers,
        sum(case when has_scanner_click then 1 else 0 end) as scanner_clicked,
        sum(case when is_bounced then 1 else 0 end) as bounced,
        sum(case when is_dropped then 1 else 0 end) as dropped,
        sum(case when is_unsubscribed then 1 else 0 end) as unsubscribed,
        sum(case when is_spam_reported then 1 else 0 end) as spam_reported
    from email_sends
    where is_sent
    group by campaign, run_id, template, locale
),

run_lifts as (
    -- a run's whole audience (breakdown all), or one language's when the sends' custom_args carry it; one row
    -- per run and breakdown, a column per window
    select
        campaign,
        run_id,
        breakdown,
        breakdown_value,  -- noqa: LT02
        {%- for w, column, aggregate in lift_outputs %}
        {{ aggregate }}(case when window_days = {{ w }} then {{ column }} end)
            as {{ column }}_{{ w }}d{{ "," if not loop.last }}  -- noqa: LT02
        {%- endfor %}
    from campaign_lift
    where scope = 'run' and breakdown in ('all', 'locale')
    group by campaign, run_id, breakdown, breakdown_value
),

final as (
    select
        sends_counted_per_run.campaign,
        sends_counted_per_run.run_id,
        sends_counted_per_run.template,
        sends_counted_per_run.locale,
        sends_counted_per_run.sent,
        sends_counted_per_run.delivered,
        sends_counted_per_run.human_openers,
        sends_counted_per_run.human_clickers,
        sends_counted_per_run.scanner_clicked,
        sends_counted_per_run.bounced,
        sends_counted_per_run.dropped,
        sends_counted_per_run.unsubscribed,
        sends_counted_per_run.spam_reported,
        {{ ratio('sends_counted_per_run.delivered', 'sends_counted_per_run.sent') }} as delivery_rate,
        {{ ratio('sends_counted_per_run.human_openers', 'sends_counted_per_run.delivered') }} as human_open_rate,
        {{ ratio('sends_counted_per_run.human_clickers', 'sends_counted_per_run.delivered') }} as click_rate,
        {{ ratio('sends_counted_per_run.human_clickers', 'sends_counted_per_run.human_openers') }}
            as click_to_open_rate,
        {{ ratio('sends_counted_per_run.bounced', 'sends_counted_per_run.sent') }} as bounce_rate,
        {{ ratio('sends_counted_per_run.unsubscribed', 'sends_counted_per_run.delivered') }} as unsubscribe_rate,
        {{ ratio('sends_counted_per_run.spam_reported', 'sends_counted_per_run.delivered') }}
            as spam_rate,  -- noqa: LT02
        {%- for w, column, aggregate in lift_outputs %}
        run_lifts.{{ column }}_{{ w }}d{{ "," if not loop.last }}  -- noqa: LT02
        {%- endfor %}
    from sends_counted_per_run
    left join run_lifts
        on
            sends_counted_per_run.campaign = run_lifts.campaign
            and sends_counted_per_run.run_id = run_lifts.run_id
            and sends_counted_per_run.template is distinct from 'owner_digest'
            and (
                (sends_counted_per_run.locale is null and run_lifts.breakdown = 'all')
                or (run_lifts.breakdown = 'locale' and sends_counted_per_run.locale = run_lifts.breakdown_value)
            )
)

select * from final
