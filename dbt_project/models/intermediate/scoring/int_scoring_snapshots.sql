{#- The days the scores see customers on (docs/scores.md): one home for the snapshot rule. -#}
{%- set history_months = var('scoring_history_months', 12) -%}
with

months as (select * from {{ ref('int_months') }}),

snapshots_listed as (
    -- The first day of each of the last months (training), and the as-of date itself (scoring). A snapshot
    -- sees whole months before its own month (the feature month) and events dated before the snapshot day.
    select
        month as snapshot_on,
        {{ add_months(-1, 'month') }} as feature_month,
        false as is_scoring_snapshot
    from months
    where
        month >= {{ add_months(-history_months, as_of_month()) }}
        and month < {{ as_of_month() }}

    union all

    select
        {{ as_of_date() }} as snapshot_on,
        {{ add_months(-1, as_of_month()) }} as feature_month,
        true as is_scoring_snapshot
),

final as (
    select
        snapshot_on,
        feature_month,
        is_scoring_snapshot,
        -- the 90-day outcome (the snapshot's month and the two after) is complete by the as-of month
        not is_scoring_snapshot and {{ add_months(3, 'snapshot_on') }} <= {{ as_of_month() }} as has_outcome
    from snapshots_listed
)

select * from final
