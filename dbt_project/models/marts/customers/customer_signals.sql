{%- set touch_days = var('no_recent_touch_days') -%}
with

customers as {{ not_materialized() }} (select * from {{ ref('int_customers_scored') }}),

usage_months as {{ not_materialized() }} (select * from {{ ref('int_usage_months_compared') }}),

active_subscriptions as {{ not_materialized() }} (select * from {{ ref('int_subscriptions_filtered_to_active') }}),

subscriptions as {{ not_materialized() }} (select * from {{ ref('int_subscriptions_end_dated') }}),

support_tickets as (select * from {{ ref('stg_crm__support_tickets') }}),

invoices as (select * from {{ ref('stg_billing__invoices') }}),

active_customers as (
    select * from customers
    where status = 'active'
),

usage_streaks as (
    -- the latest usage month, and the first month of the unbroken run of flagged months ending there
    select
        customer_id,
        max(month) as latest_month,
        max(case when not is_usage_drop then month end) as last_month_without_usage_drop,
        max(case when not is_near_plan_limit then month end) as last_month_without_near_limit
    from usage_months
    group by customer_id
),

usage_streak_starts as (
    select
        usage_months.customer_id,
        min(
            case
                when
                    usage_streaks.last_month_without_usage_drop is null
                    or usage_months.month > usage_streaks.last_month_without_usage_drop
                    then usage_months.month
            end
        ) as usage_drop_since_month,
        min(
            case
                when
                    usage_streaks.last_month_without_near_limit is null
                    or usage_months.month > usage_streaks.last_month_without_near_limit
                    then usage_months.month
            end
        ) as near_limit_since_month
    from usage_months
    inner join usage_streaks
        on usage_months.customer_id = usage_streaks.customer_id
    group by usage_months.customer_id
),

usage_signal_months as (
    select
        usage_months.customer_id,
        usage_months.is_usage_drop,
        usage_months.is_near_plan_limit,
        usage_months.usage_drop_ratio,
        usage_months.plan_usage_ratio,
        usage_streak_starts.usage_drop_since_month,
        usage_streak_starts.near_limit_since_month
    from usage_months
    inner join usage_streaks
        on
            usage_months.customer_id = usage_streaks.customer_id
            and usage_months.month = usage_streaks.latest_month
    inner join usage_streak_starts
        on usage_months.customer_id = usage_streak_starts.customer_id
),

usage_drop_signals as (
    -- doc block customer_signals: seen when the first month of the run was measured, i.e. the month after it
    select
        usage_signal_months.customer_id,
        'usage_drop' as signal,
        {{ add_months(1, 'usage_signal_months.usage_drop_since_month') }} as first_seen_on,
        usage_signal_months.usage_drop_ratio as signal_value,
        cast({{ var('usage_drop_ratio') }} as double precision) as signal_threshold,
        cast(null as {{ dbt.type_string() }}) as signal_detail
    from usage_signal_months
    inner join active_customers on usage_signal_months.customer_id = active_customers.customer_id
    where usage_signal_months.is_usage_drop
),

near_plan_limit_signals as (
    select
        usage_signal_months.customer_id,
        'near_plan_limit' as signal,
        {{ add_months(1, 'usage_signal_months.near_limit_since_month') }} as first_seen_on,
        usage_signal_months.plan_usage_ratio as signal_value,
        cast({{ var('near_plan_limit_ratio') }} as double precision) as signal_threshold,
        cast(null as {{ dbt.type_string() }}) as signal_detail
    from usage_signal_months
    inner join active_customers on usage_signal_months.customer_id = active_customers.customer_id
    where usage_signal_months.is_near_plan_limit
),

renewal_signals as (
    -- entered renewal_upcoming_days before the renewal, or when the subscription started if later
    select
        active_subscriptions.customer_id,
        'renewal_upcoming' as signal,
        max(
            case
                when
                    {{ dbt.dateadd('day', -var('renewal_upcoming_days'), 'active_subscriptions.renewal_on') }}
                    > active_subscriptions.start_date
                    then cast({{ dbt.dateadd('day', -var('renewal_upcoming_days'), 'active_subscriptions.renewal_on') }} as date)  -- noqa: LT05
                else active_subscriptions.start_date
            end
        ) as first_seen_on,
        cast(min({{ dbt.datediff(as_of_date(), 'active_subscriptions.renewal_on', 'day') }}) as double precision)
            as signal_value,
        cast({{ var('renewal_upcoming_days') }} as double precision) as signal_threshold,
        cast(min(active_subscriptions.renewal_on) as {{ dbt.type_string() }}) as signal_detail
    from active_subscriptions
    inner join active_customers on active_subscriptions.customer_id = active_customers.customer_id
    where active_subscriptions.renewal_on <= {{ dbt.dateadd('day', var('renewal_upcoming_days'), as_of_date()) }}
    group by active_subscriptions.customer_id
),

touch_thresholds as (
    select
        customer_id,
        customer_rank,
        last_touch_at,
        days_since_last_touch,
        created_at,
        first_paid_month,
        case customer_rank
            {%- for rank, days in touch_days.items() %}
            when '{{ rank }}' then {{ days }}  -- noqa: LT02
            {%- endfor %}
        end as touch_threshold_days
    from active_customers
),

no_recent_touch_signals as (
    -- the day after the threshold elapsed since the last touch (or since the first paid month, untouched)
    select
        customer_id,
        'no_recent_touch' as signal,
        cast({{ dbt.dateadd(
            'day',
            'touch_threshold_days + 1',
            'coalesce(' ~ business_date('last_touch_at') ~ ', first_paid_month)'
        ) }} as date) as first_seen_on,
        cast(
            {{ dbt.datediff('coalesce(' ~ business_date('last_touch_at') ~ ', first_paid_month)', as_of_date(), 'day') }}  -- noqa: LT05
            as double precision
        ) as signal_value,
        cast(touch_threshold_days as double precision) as signal_threshold,
        customer_rank as signal_detail
    from touch_thresholds
    where
        {{ dbt.datediff('coalesce(' ~ business_date('last_touch_at') ~ ', first_paid_month)', as_of_date(), 'day') }}
        > touch_threshold_days
),

tickets_dated as (
    select
        customer_id,
        ticket_id,
        {{ business_date('created_at') }} as created_on
    from support_tickets
    where {{ business_date('created_at') }} <= {{ as_of_date() }}
),

ticket_days as (
    select distinct
        customer_id,
        created_on
    from tickets_dated
),

ticket_days_windowed as (
    -- tickets in the window ending on each ticket day, and in the window ending the day before
    select
        ticket_days.customer_id,
        ticket_days.created_on,
        sum(
            case
                when tickets_dated.created_on > {{ dbt.dateadd('day', -var('support_spike_window_days'), 'ticket_days.created_on') }}  -- noqa: LT05
                    then 1
                else 0
            end
        ) as window_tickets,
        sum(
            case
                when tickets_dated.created_on < ticket_days.created_on then 1 else 0
            end
        ) as previous_day_window_tickets
    from ticket_days
    inner join tickets_dated
        on
            ticket_days.customer_id = tickets_dated.customer_id
            and ticket_days.created_on >= tickets_dated.created_on
            and tickets_dated.created_on
            > {{ dbt.dateadd('day', -(var('support_spike_window_days') + 1), 'ticket_days.created_on') }}
    group by ticket_days.customer_id, ticket_days.created_on
),

current_ticket_counts as (
    select
        customer_id,
        count(*) as current_tickets
    from tickets_dated
    where created_on > {{ dbt.dateadd('day', -var('support_spike_window_days'), as_of_date()) }}
    group by customer_id
),

support_spike_signals as (
    -- active when the window ending today holds enough tickets; seen on the latest day the count
    -- reached the threshold from below (the start of the current episode)
    select
        ticket_days_windowed.customer_id,
        'support_spike' as signal,
        max(ticket_days_windowed.created_on) as first_seen_on,
        cast(max(current_ticket_counts.current_tickets) as double precision) as signal_value,
        cast({{ var('support_spike_min_tickets') }} as double precision) as signal_threshold,
        cast(null as {{ dbt.type_string() }}) as signal_detail
    from ticket_days_windowed
    inner join current_ticket_counts
        on ticket_days_windowed.customer_id = current_ticket_counts.customer_id
    inner join active_customers on ticket_days_windowed.customer_id = active_customers.customer_id
    where
        current_ticket_counts.current_tickets >= {{ var('support_spike_min_tickets') }}
        and ticket_days_windowed.window_tickets >= {{ var('support_spike_min_tickets') }}
        and ticket_days_windowed.previous_day_window_tickets < {{ var('support_spike_min_tickets') }}
    group by ticket_days_windowed.customer_id
),

invoice_customers as (
    -- invoice-based customers: invoices but no subscription at all
    select
        invoices.customer_id,
        count(distinct {{ business_date('invoices.issued_at') }}) as purchase_days,
        min({{ business_date('invoices.issued_at') }}) as first_purchase_on,
        max({{ business_date('invoices.issued_at') }}) as last_purchase_on
    from invoices
    left join subscriptions on invoices.customer_id = subscriptions.customer_id
    where
        subscriptions.customer_id is null
        and invoices.status in ('paid', 'open')
        and {{ business_date('invoices.issued_at') }} <= {{ as_of_date() }}
    group by invoices.customer_id
),

purchase_gaps_measured as (
    select
        *,
        cast({{ dbt.datediff('first_purchase_on', 'last_purchase_on', 'day') }} as double precision)  -- noqa: LT05
        / (purchase_days - 1) as average_gap_days
    from invoice_customers
    where purchase_days >= {{ var('purchase_frequency_min_invoices') }}
),

purchase_frequency_signals as (
    select
        customer_id,
        'purchase_frequency_drop' as signal,
        cast({{ dbt.dateadd(
            'day',
            'cast(ceil(' ~ var('purchase_frequency_drop_factor') ~ ' * average_gap_days) as integer) + 1',
            'last_purchase_on'
        ) }} as date) as first_seen_on,
        cast({{ dbt.datediff('last_purchase_on', as_of_date(), 'day') }} as double precision) / average_gap_days  -- noqa: LT05
            as signal_value,
        cast({{ var('purchase_frequency_drop_factor') }} as double precision) as signal_threshold,
        cast(last_purchase_on as {{ dbt.type_string() }}) as signal_detail
    from purchase_gaps_measured
    where {{ dbt.datediff('last_purchase_on', as_of_date(), 'day') }}  -- noqa: LT02,LT05
        > {{ var('purchase_frequency_drop_factor') }} * average_gap_days
),

cross_sell_pairs as (
    {%- for pair in var('cross_sell_pairs') %}
    select  -- noqa: LT02
        '{{ pair.holds }}' as held_product,  -- noqa: LT02
        '{{ pair.lacks }}' as companion_product  -- noqa: LT02
    {%- if not loop.last %}
    union all  -- noqa: LT02
    {%- endif %}
    {%- endfor %}
),

held_products as (
    select
        active_subscriptions.customer_id,
        active_subscriptions.product,
        min(active_subscriptions.start_date) as held_since
    from active_subscriptions
    inner join active_customers on active_subscriptions.customer_id = active_customers.customer_id
    where active_subscriptions.mrr > 0
    group by active_subscriptions.customer_id, active_subscriptions.product
),

companions_lost as (
    -- the latest day a companion subscription ended, so a customer who dropped it enters the signal then
    select
        customer_id,
        product,
        max(effective_end_date) as lost_on
    from subscriptions
    where effective_end_date <= {{ as_of_date() }}
    group by customer_id, product
),

cross_sell_fits as (
    select
        held_products.customer_id,
        cross_sell_pairs.companion_product,
        case
            when companions_lost.lost_on > held_products.held_since then companions_lost.lost_on
            else held_products.held_since
        end as fit_since
    from held_products
    inner join cross_sell_pairs
        on held_products.product = cross_sell_pairs.held_product
    left join held_products as companions_held
        on
            held_products.customer_id = companions_held.customer_id
            and cross_sell_pairs.companion_product = companions_held.product
    left join companions_lost
        on
            held_products.customer_id = companions_lost.customer_id
            and cross_sell_pairs.companion_product = companions_lost.product
    where companions_held.customer_id is null
),

cross_sell_signals as (
    select
        customer_id,
        'cross_sell_fit' as signal,
        min(fit_since) as first_seen_on,
        cast(count(*) as double precision) as signal_value,
        cast(1 as double precision) as signal_threshold,
        {{ dbt.listagg('companion_product', "', '", 'order by companion_product') }} as signal_detail
    from cross_sell_fits
    group by customer_id
),

signals_unioned as (
    select * from usage_drop_signals
    union all
    select * from near_plan_limit_signals
    union all
    select * from renewal_signals
    union all
    select * from no_recent_touch_signals
    union all
    select * from support_spike_signals
    union all
    select * from purchase_frequency_signals
    union all
    select * from cross_sell_signals
),

final as (
    select
        signals_unioned.customer_id,
        signals_unioned.signal,
        -- never after the as-of date: a signal is known on the day the data shows it, at the latest today
        case
            when signals_unioned.first_seen_on > {{ as_of_date() }} then {{ as_of_date() }}
            else signals_unioned.first_seen_on
        end as first_seen_on,
        signals_unioned.signal_value,
        signals_unioned.signal_threshold,
        signals_unioned.signal_detail,
        customers.customer_rank as rank,
        customers.mrr
    from signals_unioned
    inner join customers on signals_unioned.customer_id = customers.customer_id
)

select * from final
