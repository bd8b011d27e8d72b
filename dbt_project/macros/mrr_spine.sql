{#-
  The bodies of the MRR spine (docs/incremental.md), taking the months to compute as a relation or CTE name: the
  views int_subscriptions_spined_to_months and int_customers_mrr_by_month call them with every month (their unit
  tests check them there), the incremental branch of int_mrr_movements_classified only with the months it rebuilds
  and the month before them (for last month's MRR), int_usage_months_compared with the months usage has, and
  int_churns_attributed_to_reasons with each churn's month before, for its customer only (by_customer).
-#}

{#- One row per subscription per month it counts in (doc block month_counting), over the months given. With
    by_customer=true the months relation holds a customer_id too (a month asked for one customer, like a churn's
    month before or a usage month): each subscription meets only its own customer's months, a hash join on
    customer_id instead of every subscription against every month. -#}
{% macro spine_subscriptions_to_months(subscriptions, months, by_customer=false) -%}
    select
        {{ months }}.month,
        {{ subscriptions }}.subscription_id,
        {{ subscriptions }}.customer_id,
        {{ subscriptions }}.currency,
        {{ subscriptions }}.plan_limit,
        {{ subscriptions }}.status = 'paused' and {{ months }}.is_as_of_month as is_paused,
        -- doc block month_counting; an open-ended subscription (end_date null) runs to the as-of month.
        {{ counted_mrr(subscriptions ~ '.status', subscriptions ~ '.mrr', months ~ '.is_as_of_month') }} as mrr
    from {{ subscriptions }}
    inner join {{ months }}
        on
            {{ subscriptions }}.start_date <= {{ months }}.snapshot_on
            and (
                {{ subscriptions }}.effective_end_date is null
                or {{ subscriptions }}.effective_end_date > {{ months }}.snapshot_on
            )
            {%- if by_customer %}
            and {{ subscriptions }}.customer_id = {{ months }}.customer_id
            {%- endif %}
{%- endmacro %}

{#- One row per customer per month of the subscription-months given: MRR, last month's MRR and the fx impact in
    the reporting currency (doc block fx_conversion), before the first paid month is known. -#}
{% macro sum_customers_mrr(subscription_months, fx_rates) -%}
    with

    count_offsets as (
        select 0 as months_later
        union all
        select 1 as months_later
    ),

    counting_months_rated as (
        -- A subscription-month counts in its own month (0 months later) and, as last month's MRR, in the
        -- next one (1 month later). Per counting month and currency: the two months whose subscription-months
        -- count in it, with its rate and previous_rate. Dates are moved on this small table, not the spine.
        select
            {{ fx_rates }}.month as counting_month,
            {{ add_months('-count_offsets.months_later', fx_rates ~ '.month') }} as month,
            {{ fx_rates }}.currency,
            count_offsets.months_later,
            {{ fx_rates }}.rate,
            {{ fx_rates }}.previous_rate
        from {{ fx_rates }}
        cross join count_offsets
    ),

    subscriptions_counted as (
        -- doc block fx_conversion: each subscription's MRR at its month's rate, counted in its month; as last
        -- month's MRR in the next month, at last month's rate (previous_mrr) and at the next month's
        -- (previous_mrr_at_current_rates). No window: a month after the last counted one gets its row (the
        -- MRR left) from the second count. The next month must be in the spine, so the as-of month's MRR is
        -- counted once.
        select
            counting_months_rated.counting_month as month,
            {{ subscription_months }}.customer_id,
            {{ subscription_months }}.is_paused and counting_months_rated.months_later = 0 as is_paused,
            case
                when counting_months_rated.months_later = 0
                    then {{ convert_money(
                        subscription_months ~ '.mrr', subscription_months ~ '.currency', 'counting_months_rated.rate'
                    ) }}
                else cast(0 as decimal(18, 2))
            end as mrr,
            case
                when counting_months_rated.months_later = 1
                    then {{ convert_money(
                        subscription_months ~ '.mrr',
                        subscription_months ~ '.currency',
                        'counting_months_rated.previous_rate'
                    ) }}
                else cast(0 as decimal(18, 2))
            end as previous_mrr,
            case
                when counting_months_rated.months_later = 1
                    then {{ convert_money(
                        subscription_months ~ '.mrr', subscription_months ~ '.currency', 'counting_months_rated.rate'
                    ) }}
                else cast(0 as decimal(18, 2))
            end as previous_mrr_at_current_rates
        from {{ subscription_months }}
        inner join counting_months_rated
            on
                {{ subscription_months }}.month = counting_months_rated.month
                and {{ subscription_months }}.currency = counting_months_rated.currency
    )

    select
        month,
        customer_id,
        cast(sum(mrr) as decimal(18, 2)) as mrr,
        cast(sum(previous_mrr) as decimal(18, 2)) as previous_mrr,
        cast(sum(previous_mrr_at_current_rates - previous_mrr) as decimal(18, 2)) as fx_impact_mrr,
        max(case when is_paused then 1 else 0 end) = 1 as is_paused
    from subscriptions_counted
    group by month, customer_id
{%- endmacro %}
