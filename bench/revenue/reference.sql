-- The monthly MRR KPIs of marts.mrr_kpis_monthly in one hand-written DuckDB statement, from the raw tables,
-- with the same rules (docs/metrics.md): month-end snapshots, end_date exclusive, trials 0, paused 0 in the
-- as-of month, past_due ended past_due_churn_days after the oldest unpaid invoice, FX from the seed with
-- fx_impact_mrr apart from the movements; invoice dates are business dates, {business_utc_offset_hours} hours ahead
-- of the stored UTC (macros/dates.sql). {as_of}, {past_due_churn_days} and {fx_csv} are filled in by
-- bench/revenue/reference_sql.py. Reporting currency JPY.
create or replace table bench_kpis as
with
subscriptions as (
    select
        subscription_id,
        customer_id,
        start_date,
        end_date,
        status,
        upper(coalesce(currency, 'JPY')) as currency,
        coalesce(
            mrr,
            case
                when billing_period_months > 0
                    then cast(round(amount / billing_period_months,
                        case when upper(coalesce(currency, 'JPY')) in ('JPY', 'KRW', 'VND') then 0 else 2 end)
                    as decimal(18, 2))
            end
        ) as mrr
    from raw.subscriptions
),
last_paid as (
    select subscription_id, max(issued_at) as last_paid_at
    from raw.invoices where status = 'paid' group by subscription_id
),
unpaid as (
    select i.subscription_id, min(cast(i.issued_at + interval {business_utc_offset_hours} hour as date)) as past_due_since
    from raw.invoices as i left join last_paid as l using (subscription_id)
    where i.status = 'open' and cast(i.issued_at + interval {business_utc_offset_hours} hour as date) <= date '{as_of}'
        and (l.last_paid_at is null or i.issued_at > l.last_paid_at)
    group by i.subscription_id
),
subscriptions_ended as (
    select
        s.*,
        case
            when s.status = 'past_due' and u.past_due_since is not null
                and (s.end_date is null or u.past_due_since + {past_due_churn_days} < s.end_date)
                then u.past_due_since + {past_due_churn_days}
            else s.end_date
        end as effective_end_date
    from subscriptions as s left join unpaid as u using (subscription_id)
),
months as (
    select
        cast(m as date) as month,
        case when m = date_trunc('month', date '{as_of}') then date '{as_of}' else last_day(m) end as snapshot_on,
        m = date_trunc('month', date '{as_of}') as is_as_of_month
    from range(
        (select date_trunc('month', min(start_date)) from subscriptions where start_date <= date '{as_of}'),
        date_trunc('month', date '{as_of}') + interval 1 month,
        interval 1 month
    ) as t(m)
),
rates as (
    select
        months.month,
        c.currency,
        case
            when c.currency = 'JPY' then cast(1 as decimal(18, 6))
            else cast(coalesce(
                (select last(r.rate order by r.month) from read_csv('{fx_csv}') as r
                 where r.currency = c.currency and r.reporting_currency = 'JPY' and r.month <= months.month),
                (select first(r.rate order by r.month) from read_csv('{fx_csv}') as r
                 where r.currency = c.currency and r.reporting_currency = 'JPY')
            ) as decimal(18, 6))
        end as rate
    from months cross join (select distinct currency from subscriptions) as c
),
subscription_months as (
    select
        months.month,
        s.customer_id,
        s.currency,
        s.status = 'paused' and months.is_as_of_month as is_paused,
        case
            when s.status = 'trialing' or (s.status = 'paused' and months.is_as_of_month) then 0
            else coalesce(s.mrr, 0)
        end as local_mrr
    from subscriptions_ended as s
    join months on s.start_date <= months.snapshot_on
        and (s.effective_end_date is null or s.effective_end_date > months.snapshot_on)
),
converted as (
    select
        sm.*,
        case when sm.currency = 'JPY' then sm.local_mrr else round(sm.local_mrr * r.rate, 0) end as mrr,
        case when sm.currency = 'JPY' then sm.local_mrr else round(sm.local_mrr * rn.rate, 0) end as mrr_at_next_rate
    from subscription_months as sm
    join rates as r using (month, currency)
    left join rates as rn on rn.currency = sm.currency and rn.month = sm.month + interval 1 month
),
customer_months as (
    select month, customer_id,
        sum(mrr) as mrr, sum(previous_mrr) as previous_mrr, sum(previous_at_rate) - sum(previous_mrr) as fx_impact_mrr,
        bool_or(is_paused) as is_paused
    from (
        select month, customer_id, mrr, 0 as previous_mrr, 0 as previous_at_rate, is_paused from converted
        union all
        select cast(month + interval 1 month as date), customer_id, 0, mrr, mrr_at_next_rate, false
        from converted where month < date_trunc('month', date '{as_of}')
    )
    group by month, customer_id
),
first_paid as (
    select customer_id, min(month) as first_paid_month from subscription_months where local_mrr > 0 group by customer_id
),
classified as (
    select
        cm.*,
        fp.first_paid_month,
        cm.mrr > 0 or cm.is_paused as is_customer,
        cm.previous_mrr > 0 as was_customer,
        cm.mrr - cm.previous_mrr - cm.fx_impact_mrr as movement_mrr
    from customer_months as cm join first_paid as fp using (customer_id)
    where cm.month >= fp.first_paid_month
),
movements as (
    select *,
        case
            when is_customer and month = first_paid_month then 'new'
            when is_customer and not was_customer then 'reactivation'
            when was_customer and not is_customer then 'churn'
            when movement_mrr > 0 then 'expansion'
            when movement_mrr < 0 then 'contraction'
            else 'none'
        end as movement
    from classified
    where is_customer or was_customer
),
summed as (
    select
        month,
        sum(previous_mrr) as starting_mrr,
        sum(movement_mrr) filter (where movement = 'new') as new_mrr,
        sum(movement_mrr) filter (where movement = 'expansion') as expansion_mrr,
        -sum(movement_mrr) filter (where movement = 'contraction') as contraction_mrr,
        -sum(movement_mrr) filter (where movement = 'churn') as churned_mrr,
        sum(movement_mrr) filter (where movement = 'reactivation') as reactivation_mrr,
        sum(fx_impact_mrr) as fx_impact_mrr,
        sum(mrr) as ending_mrr,
        count(*) filter (where was_customer) as starting_customers,
        count(*) filter (where movement = 'churn') as churned_customers,
        count(*) filter (where is_customer) as ending_customers
    from movements
    group by month
),
year_ago as (
    select
        y.month + interval 12 month as month,
        sum(y.mrr) as mrr_12_months_ago,
        sum(coalesce(t.mrr, 0)) as nrr_numerator,
        sum(least(coalesce(t.mrr, 0), y.mrr)) as grr_numerator
    from movements as y
    left join movements as t on t.customer_id = y.customer_id and t.month = y.month + interval 12 month
    where y.mrr > 0
    group by all
)
select
    months.month,
    coalesce(starting_mrr, 0) as starting_mrr, coalesce(new_mrr, 0) as new_mrr,
    coalesce(expansion_mrr, 0) as expansion_mrr, coalesce(contraction_mrr, 0) as contraction_mrr,
    coalesce(churned_mrr, 0) as churned_mrr, coalesce(reactivation_mrr, 0) as reactivation_mrr,
    coalesce(fx_impact_mrr, 0) as fx_impact_mrr, coalesce(ending_mrr, 0) as ending_mrr,
    coalesce(starting_customers, 0) as starting_customers, coalesce(churned_customers, 0) as churned_customers,
    coalesce(ending_customers, 0) as ending_customers,
    nrr_numerator / nullif(mrr_12_months_ago, 0) as trailing_12m_nrr,
    grr_numerator / nullif(mrr_12_months_ago, 0) as trailing_12m_grr
from months
left join summed using (month)
left join year_ago using (month)
order by months.month
