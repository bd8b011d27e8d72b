with

fx_rates as (select * from {{ ref('fx_rates') }}),

supplied_fx_rates as (select * from {{ ref('stg_billing__fx_rates') }}),

subscriptions as (select * from {{ ref('stg_billing__subscriptions') }}),

months as (select * from {{ ref('int_months') }}),

supplied_rates as (
    select
        month as rate_month,
        currency,
        cast(rate as decimal(18, 6)) as rate
    from supplied_fx_rates
    where reporting_currency = '{{ reporting_currency() }}'
),

shipped_rates as (
    -- doc block fx_conversion: the seed's rates serve only the currencies the source directory gives none for.
    select  -- noqa: ST06
        month as rate_month,
        upper(currency) as currency,
        cast(rate as decimal(18, 6)) as rate
    from fx_rates
    where
        upper(reporting_currency) = '{{ reporting_currency() }}'
        and upper(currency) not in (select supplied_rates.currency from supplied_rates)
),

reporting_rates as (
    select * from supplied_rates
    union all
    select * from shipped_rates
),

currencies as (
    select distinct upper(currency) as currency from subscriptions
),

currencies_spined_to_months as (
    select
        months.month,
        currencies.currency
    from months
    cross join currencies
),

latest_rate_months_found as (
    -- doc block fx_conversion: the month's own rate, else the latest earlier one, else the earliest one.
    select
        currencies_spined_to_months.month,
        currencies_spined_to_months.currency,
        coalesce(
            max(
                case
                    when reporting_rates.rate_month <= currencies_spined_to_months.month then reporting_rates.rate_month
                end
            ),
            min(reporting_rates.rate_month)
        ) as rate_month
    from currencies_spined_to_months
    left join reporting_rates
        on currencies_spined_to_months.currency = reporting_rates.currency
    group by currencies_spined_to_months.month, currencies_spined_to_months.currency
),

rates_found as (
    select
        latest_rate_months_found.month,
        latest_rate_months_found.currency,
        latest_rate_months_found.rate_month,
        case
            when latest_rate_months_found.currency = '{{ reporting_currency() }}' then cast(1 as decimal(18, 6))
            else reporting_rates.rate
        end as rate
    from latest_rate_months_found
    left join reporting_rates
        on
            latest_rate_months_found.currency = reporting_rates.currency
            and latest_rate_months_found.rate_month = reporting_rates.rate_month
),

final as (
    select
        month,
        currency,
        rate_month,
        rate,
        cast(lag(rate) over (partition by currency order by month) as decimal(18, 6)) as previous_rate
    from rates_found
)

select * from final
