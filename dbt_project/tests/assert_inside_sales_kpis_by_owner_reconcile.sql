-- Owner sums equal the team's figures (doc block inside_sales_kpis_by_owner): every additive column of
-- inside_sales_kpis_monthly_by_owner adds up to inside_sales_kpis_monthly's, a CSQL handed off is received
-- by exactly one owner, and a shared credit never counts a won CSQL more than twice.
-- Returns the months that do not; money may differ by each owner row's rounding to 0.01.
with

team as (select * from {{ ref('inside_sales_kpis_monthly') }}),

by_owner as (select * from {{ ref('inside_sales_kpis_monthly_by_owner') }}),

owners_summed as (
    select
        month,
        count(*) as owner_rows,
        sum(accounts_first_approached) as accounts_first_approached,
        sum(effective_conversations) as effective_conversations,
        sum(csqls_created) as csqls_created,
        sum(intent_csqls_created) as intent_csqls_created,
        sum(csqls_to_opportunity) as csqls_to_opportunity,
        sum(csqls_handed_off) as csqls_handed_off,
        sum(csqls_received) as csqls_received,
        sum(csqls_won_as_creator) as csqls_won_as_creator,
        sum(csqls_won_as_closer) as csqls_won_as_closer,
        sum(csqls_won_credited) as csqls_won_credited,
        sum(won_expansion_mrr_as_creator) as won_expansion_mrr_as_creator,
        sum(won_expansion_mrr_as_closer) as won_expansion_mrr_as_closer
    from by_owner
    group by month
),

final as (
    select
        team.month,
        team.csqls_created,
        owners_summed.csqls_created as owner_csqls_created,
        team.won_expansion_mrr,
        owners_summed.won_expansion_mrr_as_creator,
        owners_summed.won_expansion_mrr_as_closer
    from team
    left join owners_summed
        on team.month = owners_summed.month
    where
        coalesce(owners_summed.accounts_first_approached, 0) <> team.accounts_approached
        or coalesce(owners_summed.effective_conversations, 0) <> team.effective_conversations
        or coalesce(owners_summed.csqls_created, 0) <> team.csqls_created
        or coalesce(owners_summed.intent_csqls_created, 0) <> team.intent_csqls_created
        or coalesce(owners_summed.csqls_to_opportunity, 0) <> team.csqls_to_opportunity
        or coalesce(owners_summed.csqls_won_as_creator, 0) <> team.csqls_won
        or coalesce(owners_summed.csqls_won_as_closer, 0) <> team.csqls_won
        or coalesce(owners_summed.csqls_handed_off, 0) <> coalesce(owners_summed.csqls_received, 0)
        or coalesce(owners_summed.csqls_won_credited, 0) < team.csqls_won
        or coalesce(owners_summed.csqls_won_credited, 0) > 2 * team.csqls_won
        or abs(coalesce(owners_summed.won_expansion_mrr_as_creator, 0) - team.won_expansion_mrr)
        > 0.01 * coalesce(owners_summed.owner_rows, 0)
        or abs(coalesce(owners_summed.won_expansion_mrr_as_closer, 0) - team.won_expansion_mrr)
        > 0.01 * coalesce(owners_summed.owner_rows, 0)
)

select * from final
