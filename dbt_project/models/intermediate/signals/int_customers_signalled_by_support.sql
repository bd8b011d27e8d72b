with

customers as {{ not_materialized() }} (select * from {{ ref('int_customers_scored') }}),

support_tickets as (select * from {{ ref('stg_crm__support_tickets') }}),

active_customers as (
    select * from customers
    where status = 'active'
),

tickets_dated as (
    select
        customer_id,
        ticket_id,
        {{ business_date('created_at') }} as created_on
    from support_tickets
    where {{ business_date('created_at') }} <= {{ as_of_date() }}
),

current_ticket_counts as (
    -- the active customers whose window ending today holds enough tickets: the only ones the signal can list
    select
        tickets_dated.customer_id,
        count(*) as current_tickets
    from tickets_dated
    inner join active_customers on tickets_dated.customer_id = active_customers.customer_id
    where tickets_dated.created_on > {{ dbt.dateadd('day', -var('support_spike_window_days'), as_of_date()) }}
    group by tickets_dated.customer_id
    having count(*) >= {{ var('support_spike_min_tickets') }}
),

tickets_of_candidates as (
    -- their tickets only: a customer's windows read its own tickets, so the range join below need not read
    -- every customer's whole history
    select tickets_dated.*
    from tickets_dated
    inner join current_ticket_counts on tickets_dated.customer_id = current_ticket_counts.customer_id
),

ticket_days as (
    select distinct
        customer_id,
        created_on
    from tickets_of_candidates
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
    inner join tickets_of_candidates as tickets_dated
        on
            ticket_days.customer_id = tickets_dated.customer_id
            and ticket_days.created_on >= tickets_dated.created_on
            and tickets_dated.created_on
            > {{ dbt.dateadd('day', -(var('support_spike_window_days') + 1), 'ticket_days.created_on') }}
    group by ticket_days.customer_id, ticket_days.created_on
),

support_spike_signals as (
    -- active when the window ending today holds enough tickets; seen on the latest day the count
    -- reached the threshold from below (the start of the current episode)
    select
        ticket_days_windowed.customer_id,
        'support_spike' as signal,
        max(ticket_days_windowed.created_on) as first_seen_on,
        cast(max(current_ticket_counts.current_tickets) as {{ type_double() }}) as signal_value,
        cast({{ var('support_spike_min_tickets') }} as {{ type_double() }}) as signal_threshold,
        cast(null as {{ dbt.type_string() }}) as signal_detail
    from ticket_days_windowed
    inner join current_ticket_counts
        on ticket_days_windowed.customer_id = current_ticket_counts.customer_id
    where
        ticket_days_windowed.window_tickets >= {{ var('support_spike_min_tickets') }}
        and ticket_days_windowed.previous_day_window_tickets < {{ var('support_spike_min_tickets') }}
    group by ticket_days_windowed.customer_id
),

final as (
    select * from support_spike_signals
)

select * from final
