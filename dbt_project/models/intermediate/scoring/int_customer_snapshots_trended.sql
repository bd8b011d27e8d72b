{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_snapshots_to_rebuild(outcome=true) }}",
) }}
{#- The scored population with its MRR trend and 90-day outcomes, from the MRR movements (docs/scores.md).
    Incremental by snapshot and customer (macros/snapshot_incremental.sql, docs/incremental.md): a snapshot's
    rows read its feature month and the months before, and its outcome months when complete. Nothing here ranks
    customers against each other (mrr_percentile is computed in int_customer_features_monthly): a row depends
    on its own customer's data only, so rows kept are still right. -#}
with

snapshots as (select * from {{ ref('int_scoring_snapshots') }}),

movements as (select * from {{ ref('int_mrr_movements_classified') }}),

customers as (select * from {{ ref('stg_crm__customers') }}),

movements_numbered as (
    select
        customer_id,
        month,
        mrr,
        is_customer,
        movement,
        movement_mrr,
        {{ dbt.datediff("cast('2000-01-01' as date)", 'month', 'month') }} as month_number  -- noqa: LT05
    from movements
),

movements_trended as (
    -- Window frames count calendar months (RANGE over the month number): a lapsed customer's silent months
    -- have no row. Each customer's months are sorted once; nothing is joined month to month.
    select
        customer_id,
        month,
        mrr,
        is_customer,
        sum(case when mrr > 0 then 1 else 0 end) over (
            partition by customer_id order by month_number rows between unbounded preceding and current row
        ) as tenure_months,
        sum(mrr) over (
            partition by customer_id order by month_number range between 3 preceding and 3 preceding
        ) as mrr_3_months_before,
        sum(case when movement = 'expansion' then 1 else 0 end) over (
            partition by customer_id order by month_number range between 5 preceding and current row
        ) as expansions_last_6_months,
        sum(case when movement = 'contraction' then 1 else 0 end) over (
            partition by customer_id order by month_number range between 5 preceding and current row
        ) as contractions_last_6_months,
        -- outcomes: the three months after the feature month, i.e. the snapshot's month and the two after
        max(case when movement = 'churn' then 1 else 0 end) over (
            partition by customer_id order by month_number range between 1 following and 3 following
        ) as churns_next_3_months,
        max(case when movement = 'expansion' then 1 else 0 end) over (
            partition by customer_id order by month_number range between 1 following and 3 following
        ) as expansions_next_3_months,
        sum(case when movement = 'expansion' then movement_mrr else 0 end) over (
            partition by customer_id order by month_number range between 1 following and 3 following
        ) as expansion_mrr_next_3_months
    from movements_numbered
),

population as (
    -- Customers paying in the last whole month before the snapshot.
    select
        snapshots.snapshot_on,
        snapshots.feature_month,
        snapshots.is_scoring_snapshot,
        snapshots.has_outcome,
        movements_trended.customer_id,
        movements_trended.mrr,
        movements_trended.tenure_months,
        movements_trended.expansions_last_6_months,
        movements_trended.contractions_last_6_months,
        customers.employee_count,
        coalesce(movements_trended.mrr_3_months_before, 0) as mrr_3_months_before,
        coalesce(movements_trended.churns_next_3_months, 0) as churns_next_3_months,
        coalesce(movements_trended.expansions_next_3_months, 0) as expansions_next_3_months,
        coalesce(movements_trended.expansion_mrr_next_3_months, 0) as expansion_mrr_next_3_months
    from snapshots
    inner join movements_trended
        on
            snapshots.feature_month = movements_trended.month
            and movements_trended.is_customer
    inner join customers
        on movements_trended.customer_id = customers.customer_id
    where {{ is_snapshot_to_build('snapshots.snapshot_on', 'movements_trended.customer_id', outcome=true) }}
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
