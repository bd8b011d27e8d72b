{{ config(materialized='view') }}
{#- Features of every customer at every snapshot, from data dated before the snapshot only (docs/scores.md): the
    incremental int_customer_snapshots_joined with mrr_percentile, which ranks customers against each other and
    is recomputed every build (int_snapshot_mrrs_ranked). A view: the scoring step reads it once a day. -#}
with

joined as (select * from {{ ref('int_customer_snapshots_joined') }}),

mrrs_ranked as (select * from {{ ref('int_snapshot_mrrs_ranked') }}),

features_ranked as (
    select
        joined.customer_id,
        joined.snapshot_on,
        joined.feature_month,
        joined.is_scoring_snapshot,
        joined.mrr,
        joined.mrr_change_3_months_ratio,
        joined.tenure_months,
        mrrs_ranked.mrr_percentile,
        joined.expansions_last_6_months,
        joined.contractions_last_6_months,
        joined.employee_count,
        joined.usage_value,
        joined.usage_vs_3_month_average,
        joined.plan_usage_ratio,
        joined.product_count,
        joined.products_held,
        joined.contract_term_months,
        joined.days_to_renewal,
        joined.days_since_last_touch,
        joined.touches_last_90_days,
        joined.conversations_last_90_days,
        joined.tickets_last_90_days,
        joined.open_expansion_deals,
        joined.open_renewal_deals,
        joined.has_outcome,
        joined.is_churned_next_90_days,
        joined.is_expanded_next_90_days,
        joined.expansion_mrr_next_90_days
    from joined
    left join mrrs_ranked
        on
            joined.snapshot_on = mrrs_ranked.snapshot_on
            and joined.mrr is not distinct from mrrs_ranked.mrr
),

final as (
    select * from features_ranked
)

select * from final
