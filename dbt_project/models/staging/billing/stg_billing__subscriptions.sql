with

source as (select * from {{ source('raw', 'subscriptions') }}),

defaulted as (
    select
        *,
        upper(trim(coalesce(currency, 'JPY'))) as currency_code
    from source
),

final as (
    select
        cast(subscription_id as {{ dbt.type_string() }}) as subscription_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(start_date as date) as start_date,
        cast(end_date as date) as end_date,
        product,
        plan,
        cast(quantity as {{ dbt.type_bigint() }}) as quantity,
        plan_limit,
        -- source contract: a blank status is active (the dates decide), a blank currency JPY
        coalesce(status, 'active') as status,
        cancel_reason,
        currency_code as currency,
        -- doc block mrr_normalisation: a supplied mrr wins; else amount per billing period, per month.
        cast(
            coalesce(
                mrr,
                case
                    when billing_period_months > 0
                        then {{ divide_money('amount', 'billing_period_months', 'currency_code') }}
                end
            ) as decimal(18, 2)
        ) as mrr,
        mrr as supplied_mrr,
        amount,
        cast(billing_period_months as {{ dbt.type_bigint() }}) as billing_period_months,
        cast(coalesce(contract_term_months, 1) as {{ dbt.type_bigint() }}) as contract_term_months,
        _source_file as source_file,
        _source_row as source_row
    from defaulted
)

select * from final
