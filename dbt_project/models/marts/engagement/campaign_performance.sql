with

email_sends as (select * from {{ ref('email_sends') }}),

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

final as (
    select
        campaign,
        run_id,
        template,
        locale,
        sent,
        delivered,
        human_openers,
        human_clickers,
        scanner_clicked,
        bounced,
        dropped,
        unsubscribed,
        spam_reported,
        {{ ratio('delivered', 'sent') }} as delivery_rate,
        {{ ratio('human_openers', 'delivered') }} as human_open_rate,
        {{ ratio('human_clickers', 'delivered') }} as click_rate,
        {{ ratio('human_clickers', 'human_openers') }} as click_to_open_rate,
        {{ ratio('bounced', 'sent') }} as bounce_rate,
        {{ ratio('unsubscribed', 'delivered') }} as unsubscribe_rate,
        {{ ratio('spam_reported', 'delivered') }} as spam_rate
    from sends_counted_per_run
)

select * from final
