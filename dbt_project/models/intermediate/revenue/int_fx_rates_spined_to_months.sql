with

fx_rates as (select * from {{ ref('fx_rates') }}),

subscriptions as (select * from {{ ref('stg_billing__subscriptions') }}),

months as (select * from {{ ref('int_months') }}),

reporting_rates as (
    select  -- noqa: ST06
        month as rate_month,
        upper(currency) as currency,
        cast(rate as decimal(18, 6)) as rate
    from fx_rates
    where upper(reporting_currency) = '{{ reporting_currency() }}'
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
