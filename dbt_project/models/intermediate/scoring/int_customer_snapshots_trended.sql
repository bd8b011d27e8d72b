{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_snapshots_to_rebuild(outcome=true) }}",
) }}
{#- The scored population with its MRR trend and 90-day outcomes, from the MRR movements (docs/scores.md).
    Incremental by snapshot and customer (macros/snapshot_incremental.sql, docs/incremental.md): a snapshot's
    rows read its feature month and the months before, and its outcome months when complete. Nothing here ranks
    customers against each other (mrr_percentile is computed in int_customer_features_monthly): a row depends
    on its own customer's data only, so rows kept are still right. Only the snapshots and customers built are
    read: each (snapshot, customer) is one aggregate over its customer's months up to its last outcome month,
    from the fifth month before its feature month for the snapshots built whole, whose tenures are counted from
    every customer's paid months read once (bucketed by feature month, then summed). -#}
with

snapshots as (select * from {{ ref('int_scoring_snapshots') }}),

snapshots_whole as (
    {{ snapshots_to_build_whole('snapshots', outcome=true) }}
),

snapshot_customers_listed as (
    {{ snapshot_customers_to_build('snapshots', outcome=true) }}
),

movements as (select * from {{ ref('int_mrr_movements_classified') }}),

customers as (select * from {{ ref('stg_crm__customers') }}),

feature_months_whole as (
    -- the feature months of the snapshots built whole, each with the one before it (1900-01-01 for the first)
    select
        feature_month,
        coalesce(lag(feature_month) over (order by feature_month), cast('1900-01-01' as date))
            as previous_feature_month
    from (select distinct feature_month from snapshots_whole) as feature_months
),

paid_months_bucketed as (
    -- every customer's paid months through the last of them, counted once, by the first of them at or after
    -- the month: a snapshot built whole sums its customer's counts through its own feature month (its tenure)
    -- instead of joining every month before it again
    select
        movements.customer_id,
        feature_months_whole.feature_month,
        count(*) as paid_months
    from movements
    inner join feature_months_whole
        on
            movements.month <= feature_months_whole.feature_month
            and movements.month > feature_months_whole.previous_feature_month
    where movements.mrr > 0
    group by movements.customer_id, feature_months_whole.feature_month
),

tenures_whole as (
    select
        snapshots_whole.snapshot_on,
        paid_months_bucketed.customer_id,
        sum(paid_months_bucketed.paid_months) as tenure_months
    from snapshots_whole
    inner join paid_months_bucketed
        on snapshots_whole.feature_month >= paid_months_bucketed.feature_month
    group by snapshots_whole.snapshot_on, paid_months_bucketed.customer_id
),

movements_read as (
    -- The months each built row reads, through the snapshot's last outcome month (the third after the feature
    -- month): every customer of a snapshot built whole from the fifth month before its feature month (its
    -- tenure is counted above), the listed customers of the others from their first month.
    select
        snapshots_whole.snapshot_on,
        snapshots_whole.feature_month,
        snapshots_whole.is_scoring_snapshot,
        snapshots_whole.has_outcome,
        false as is_listed,
        movements.customer_id,
        movements.month,
        movements.mrr,
        movements.is_customer,
        movements.movement,
        movements.movement_mrr
    from snapshots_whole
    inner join movements
        on
            movements.month >= {{ add_months(-5, 'snapshots_whole.feature_month') }}
            and movements.month <= {{ add_months(3, 'snapshots_whole.feature_month') }}

    union all

    select
        snapshot_customers_listed.snapshot_on,
        snapshot_customers_listed.feature_month,
        snapshot_customers_listed.is_scoring_snapshot,
        snapshot_customers_listed.has_outcome,
        true as is_listed,
        movements.customer_id,
        movements.month,
        movements.mrr,
        movements.is_customer,
        movements.movement,
        movements.movement_mrr
    from snapshot_customers_listed
    inner join movements
        on
            snapshot_customers_listed.customer_id = movements.customer_id
            and movements.month <= {{ add_months(3, 'snapshot_customers_listed.feature_month') }}
),

movements_trended as (
    -- One aggregate per customer and snapshot, counting calendar months from the feature month (a lapsed
    -- customer's silent months have no row): the customer's MRR of the feature month, its paid months through it
    -- (tenure), the MRR three months before, expansions and contractions of the six months through it, and the
    -- outcomes of the three after, i.e. the snapshot's month and the two after. Only customers paying in the
    -- feature month are kept.
    select
        snapshot_on,
        feature_month,
        is_scoring_snapshot,
        has_outcome,
        is_listed,
        customer_id,
        max(case when month = feature_month then mrr end) as mrr,
        -- a listed customer's tenure; that of a snapshot built whole is tenures_whole's
        sum(case when mrr > 0 and month <= feature_month then 1 else 0 end) as tenure_months_read,
        sum(case when month = {{ add_months(-3, 'feature_month') }} then mrr end) as mrr_3_months_before,
        sum(
            case
                when
                    movement = 'expansion'
                    and month >= {{ add_months(-5, 'feature_month') }}
                    and month <= feature_month
                    then 1
                else 0
            end
        ) as expansions_last_6_months,
        sum(
            case
                when
                    movement = 'contraction'
                    and month >= {{ add_months(-5, 'feature_month') }}
                    and month <= feature_month
                    then 1
                else 0
            end
        ) as contractions_last_6_months,
        max(case when movement = 'churn' and month > feature_month then 1 else 0 end) as churns_next_3_months,
        max(case when movement = 'expansion' and month > feature_month then 1 else 0 end)
            as expansions_next_3_months,
        sum(case when movement = 'expansion' and month > feature_month then movement_mrr else 0 end)
            as expansion_mrr_next_3_months
    from movements_read
    group by snapshot_on, feature_month, is_scoring_snapshot, has_outcome, is_listed, customer_id
    having max(case when month = feature_month and is_customer then 1 else 0 end) = 1
),

population as (
    -- Customers paying in the last whole month before the snapshot.
    select
        movements_trended.snapshot_on,
        movements_trended.feature_month,
        movements_trended.is_scoring_snapshot,
        movements_trended.has_outcome,
        movements_trended.customer_id,
        movements_trended.mrr,
        movements_trended.expansions_last_6_months,
        movements_trended.contractions_last_6_months,
        customers.employee_count,
        movements_trended.churns_next_3_months,
        movements_trended.expansions_next_3_months,
        movements_trended.expansion_mrr_next_3_months,
        coalesce(movements_trended.mrr_3_months_before, 0) as mrr_3_months_before,
        case
            when movements_trended.is_listed then movements_trended.tenure_months_read
            else coalesce(tenures_whole.tenure_months, 0)
        end as tenure_months
    from movements_trended
    inner join customers
        on movements_trended.customer_id = customers.customer_id
    left join tenures_whole
        on
            not movements_trended.is_listed
            and movements_trended.snapshot_on = tenures_whole.snapshot_on
            and movements_trended.customer_id = tenures_whole.customer_id
),

final as (
    select
        customer_id,
        snapshot_on,
        feature_month,
        is_scoring_snapshot,
        cast(mrr as {{ type_double() }}) as mrr,
        {{ ratio('mrr', 'mrr_3_months_before') }} - 1 as mrr_change_3_months_ratio,
        cast(tenure_months as {{ dbt.type_bigint() }}) as tenure_months,
        cast(expansions_last_6_months as {{ dbt.type_bigint() }}) as expansions_last_6_months,
        cast(contractions_last_6_months as {{ dbt.type_bigint() }}) as contractions_last_6_months,
        cast(employee_count as {{ type_double() }}) as employee_count,
        has_outcome,
        case when has_outcome then churns_next_3_months > 0 end as is_churned_next_90_days,
        case when has_outcome then expansions_next_3_months > 0 end as is_expanded_next_90_days,
        case when has_outcome then cast(expansion_mrr_next_3_months as {{ type_double() }}) end
            as expansion_mrr_next_90_days
    from population
)

select * from final
