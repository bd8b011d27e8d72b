{#- mrr_percentile of int_customer_features_monthly: percent_rank() over each snapshot's customers ordered by MRR,
    computed from the count of customers at each MRR (~105K rows at 1M customers, not 8M). A separate table
    because it ranks customers against each other: one customer's change moves every other customer's rank,
    so the incremental int_customer_snapshots_joined cannot keep it. -#}
with

population as (select * from {{ ref('int_customer_snapshots_trended') }}),

mrrs_counted as (
    select
        snapshot_on,
        mrr,
        count(*) as customers
    from population
    group by snapshot_on, mrr
),

ranks_computed as (
    -- percent_rank: (rank - 1) / (rows - 1), the rank being one more than the rows ordered before (nulls last)
    select
        snapshot_on,
        mrr,
        coalesce(
            sum(customers) over (
                partition by snapshot_on order by mrr asc nulls last
                rows between unbounded preceding and 1 preceding
            ),
            0
        ) as customers_before,
        sum(customers) over (partition by snapshot_on) as snapshot_customers
    from mrrs_counted
),

final as (
    select
        snapshot_on,
        mrr,
        case
            when snapshot_customers > 1
                then cast(customers_before as {{ type_double() }}) / cast(snapshot_customers - 1 as {{ type_double() }})
            else cast(0 as {{ type_double() }})
        end as mrr_percentile
    from ranks_computed
)

select * from final
