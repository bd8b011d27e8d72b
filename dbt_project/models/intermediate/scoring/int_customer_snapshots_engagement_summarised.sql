{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_snapshots_to_rebuild() }}",
) }}
{#- Touches, support tickets and open deals of each customer as seen on each snapshot day (docs/scores.md).
    Incremental by snapshot and customer (macros/snapshot_incremental.sql, docs/incremental.md). -#}
with

snapshots as (select * from {{ ref('int_scoring_snapshots') }}),

activities as (select * from {{ ref('stg_crm__activities') }}),

support_tickets as (select * from {{ ref('stg_crm__support_tickets') }}),

deals as (select * from {{ ref('stg_crm__deals') }}),

touches_by_day as (
    -- Calls, meetings, emails and visits per customer and business day, before the as-of date (the latest
    -- snapshot): each snapshot below reads days before it only.
    select
        customer_id,
        {{ business_date('occurred_at') }} as touched_on,
        count(*) as touches,
        sum(
            case
                when outcome in ('{{ var("effective_conversation_outcomes") | join("', '") }}') then 1  -- noqa: LT05
                else 0
            end
        ) as conversations
    from activities
    where
        activity_type in ('{{ var("touch_activity_types") | join("', '") }}')  -- noqa: LT05
        and {{ business_date('occurred_at') }} < {{ as_of_date() }}
    group by customer_id, {{ business_date('occurred_at') }}
),

snapshots_whole as (
    {{ snapshots_to_build_whole('snapshots') }}
),

snapshot_customers_listed as (
    {{ snapshot_customers_to_build('snapshots') }}
),

touches_counted as (
    -- The 90 days before each snapshot: a day falls in at most four snapshots' windows. Each source below is
    -- joined to the snapshots built whole, and by customer to the listed customers' snapshots
    -- (macros/snapshot_incremental.sql): only the rows built are read.
    select
        touches_by_day.customer_id,
        snapshots_whole.snapshot_on,
        sum(touches_by_day.touches) as touches_last_90_days,
        sum(touches_by_day.conversations) as conversations_last_90_days
    from touches_by_day
    inner join snapshots_whole
        on
            touches_by_day.touched_on < snapshots_whole.snapshot_on
            and touches_by_day.touched_on >= {{ dbt.dateadd('day', -90, 'snapshots_whole.snapshot_on') }}
    group by touches_by_day.customer_id, snapshots_whole.snapshot_on

    union all

    select
        touches_by_day.customer_id,
        snapshot_customers_listed.snapshot_on,
        sum(touches_by_day.touches) as touches_last_90_days,
        sum(touches_by_day.conversations) as conversations_last_90_days
    from touches_by_day
    inner join snapshot_customers_listed
        on
            touches_by_day.customer_id = snapshot_customers_listed.customer_id
            and touches_by_day.touched_on < snapshot_customers_listed.snapshot_on
            and touches_by_day.touched_on >= {{ dbt.dateadd('day', -90, 'snapshot_customers_listed.snapshot_on') }}
    group by touches_by_day.customer_id, snapshot_customers_listed.snapshot_on
),

touch_months_found as (
    -- The last touch of each month with touches, and the customer's next month with touches.
    select
        customer_id,
        {{ month_of('touched_on') }} as touch_month,
        max(touched_on) as last_touch_on,
        lead({{ month_of('touched_on') }}) over (
            partition by customer_id order by {{ month_of('touched_on') }}
        ) as next_touch_month
    from touches_by_day
    group by customer_id, {{ month_of('touched_on') }}
),

last_touches_found as (
    -- The last touch before a snapshot is the last of the latest touch month before it: that month is
    -- before the snapshot and the next touch month (if any) is not. Months hold only days before the
    -- as-of date, so a mid-month scoring snapshot reads its own month's earlier days too.
    select
        touch_months_found.customer_id,
        snapshots_whole.snapshot_on,
        touch_months_found.last_touch_on
    from touch_months_found
    inner join snapshots_whole
        on
            touch_months_found.touch_month < snapshots_whole.snapshot_on
            and (
                touch_months_found.next_touch_month is null
                or touch_months_found.next_touch_month >= snapshots_whole.snapshot_on
            )

    union all

    select
        touch_months_found.customer_id,
        snapshot_customers_listed.snapshot_on,
        touch_months_found.last_touch_on
    from touch_months_found
    inner join snapshot_customers_listed
        on
            touch_months_found.customer_id = snapshot_customers_listed.customer_id
            and touch_months_found.touch_month < snapshot_customers_listed.snapshot_on
            and (
                touch_months_found.next_touch_month is null
                or touch_months_found.next_touch_month >= snapshot_customers_listed.snapshot_on
            )
),

tickets_counted as (
    select
        support_tickets.customer_id,
        snapshots_whole.snapshot_on,
        count(*) as tickets_last_90_days
    from support_tickets
    inner join snapshots_whole
        on
            {{ business_date('support_tickets.created_at') }} < snapshots_whole.snapshot_on
            and {{ business_date('support_tickets.created_at') }} >= {{ dbt.dateadd('day', -90, 'snapshots_whole.snapshot_on') }}  -- noqa: LT05
    group by support_tickets.customer_id, snapshots_whole.snapshot_on

    union all

    select
        support_tickets.customer_id,
        snapshot_customers_listed.snapshot_on,
        count(*) as tickets_last_90_days
    from support_tickets
    inner join snapshot_customers_listed
        on
            support_tickets.customer_id = snapshot_customers_listed.customer_id
            and {{ business_date('support_tickets.created_at') }} < snapshot_customers_listed.snapshot_on
            and {{ business_date('support_tickets.created_at') }} >= {{ dbt.dateadd('day', -90, 'snapshot_customers_listed.snapshot_on') }}  -- noqa: LT05
    group by support_tickets.customer_id, snapshot_customers_listed.snapshot_on
),

open_deals_counted as (
    -- Deals open on the snapshot day: created before it, closed (if ever) on or after it.
    select
        deals.customer_id,
        snapshots_whole.snapshot_on,
        sum(case when deals.deal_type in ('upsell', 'cross_sell') then 1 else 0 end) as open_expansion_deals,
        sum(case when deals.deal_type = 'renewal' then 1 else 0 end) as open_renewal_deals
    from deals
    inner join snapshots_whole
        on
            {{ business_date('deals.created_at') }} < snapshots_whole.snapshot_on
            and (deals.closed_at is null or {{ business_date('deals.closed_at') }} >= snapshots_whole.snapshot_on)
    group by deals.customer_id, snapshots_whole.snapshot_on

    union all

    select
        deals.customer_id,
        snapshot_customers_listed.snapshot_on,
        sum(case when deals.deal_type in ('upsell', 'cross_sell') then 1 else 0 end) as open_expansion_deals,
        sum(case when deals.deal_type = 'renewal' then 1 else 0 end) as open_renewal_deals
    from deals
    inner join snapshot_customers_listed
        on
            deals.customer_id = snapshot_customers_listed.customer_id
            and {{ business_date('deals.created_at') }} < snapshot_customers_listed.snapshot_on
            and (
                deals.closed_at is null
                or {{ business_date('deals.closed_at') }} >= snapshot_customers_listed.snapshot_on
            )
    group by deals.customer_id, snapshot_customers_listed.snapshot_on
),

engagement_stacked as (
    -- One aggregate over the four, instead of four joins of tables as long as the population.
    select
        customer_id,
        snapshot_on,
        touches_last_90_days,
        conversations_last_90_days,
        cast(null as date) as last_touch_on,
        0 as tickets_last_90_days,
        0 as open_expansion_deals,
        0 as open_renewal_deals
    from touches_counted

    union all

    select
        customer_id,
        snapshot_on,
        0 as touches_last_90_days,
        0 as conversations_last_90_days,
        last_touch_on,
        0 as tickets_last_90_days,
        0 as open_expansion_deals,
        0 as open_renewal_deals
    from last_touches_found

    union all

    select
        customer_id,
        snapshot_on,
        0 as touches_last_90_days,
        0 as conversations_last_90_days,
        cast(null as date) as last_touch_on,
        tickets_last_90_days,
        0 as open_expansion_deals,
        0 as open_renewal_deals
    from tickets_counted

    union all

    select
        customer_id,
        snapshot_on,
        0 as touches_last_90_days,
        0 as conversations_last_90_days,
        cast(null as date) as last_touch_on,
        0 as tickets_last_90_days,
        open_expansion_deals,
        open_renewal_deals
    from open_deals_counted
),

final as (
    select
        customer_id,
        snapshot_on,
        max(last_touch_on) as last_touch_on,
        cast(sum(touches_last_90_days) as {{ dbt.type_bigint() }}) as touches_last_90_days,
        cast(sum(conversations_last_90_days) as {{ dbt.type_bigint() }}) as conversations_last_90_days,
        cast(sum(tickets_last_90_days) as {{ dbt.type_bigint() }}) as tickets_last_90_days,
        cast(sum(open_expansion_deals) as {{ dbt.type_bigint() }}) as open_expansion_deals,
        cast(sum(open_renewal_deals) as {{ dbt.type_bigint() }}) as open_renewal_deals
    from engagement_stacked
    group by customer_id, snapshot_on
)

select * from final
