{#- ISO 4217 currencies without a minor unit (exponent 0); every other currency is kept to 2 decimals. -#}
{% macro zero_decimal_currencies() -%}
    {{ return(['JPY', 'KRW', 'VND', 'CLP', 'ISK', 'PYG', 'UGX', 'XAF', 'XOF', 'XPF', 'BIF', 'DJF', 'GNF', 'KMF', 'RWF', 'VUV']) }}
{%- endmacro %}

{#-
  The rounding rule for money and ratios of money (doc block rounding): exact decimal arithmetic, rounded once,
  half away from zero, to a whole `step` of hundredths (1: to the cent; 100: to the whole unit), as decimal(18,2).
  `amount` has at most 2 decimals; `divisor` is a positive whole number. Computed on whole hundredths:
  round(n / d) = (2n + d) div 2d, with the division made exact by subtracting the remainder first, so DuckDB
  (whose `/` on decimals and integers returns a double: 200.03 / 2 = 100.01499.. would round to 100.01),
  PostgreSQL (whose `/` on integers truncates) and Spark give the same digits (100.02).
-#}
{% macro divide_rounded(amount, divisor, step='1') -%}
    {%- set hundredths = 'cast(abs(' ~ amount ~ ') * 100 as ' ~ dbt.type_bigint() ~ ')' -%}
    {%- set d = '(cast(' ~ divisor ~ ' as ' ~ dbt.type_bigint() ~ ') * ' ~ step ~ ')' -%}
    {%- set numerator = '(2 * ' ~ hundredths ~ ' + ' ~ d ~ ')' -%}
    {%- set denominator = '(2 * ' ~ d ~ ')' -%}
    cast(
        sign({{ amount }})
        * (({{ numerator }} - mod({{ numerator }}, {{ denominator }})) / {{ denominator }})
        * {{ step }}
        / 100.0
        as decimal(18, 2)
    )
{%- endmacro %}

{#-
  amount / divisor rounded by the rounding rule to the currency's minor unit (doc block mrr_normalisation):
  whole units for currencies without one, hundredths otherwise.
-#}
{% macro divide_money(amount, divisor, currency) -%}
    {%- set step = "(case when upper(" ~ currency ~ ") in ('" ~ zero_decimal_currencies() | join("', '") ~ "') then 100 else 1 end)" -%}
    {{- divide_rounded(amount, divisor, step) -}}
{%- endmacro %}

{#- The reporting currency (var reporting_currency, doc block fx_conversion), upper-cased. -#}
{% macro reporting_currency() -%}
    {{- return(var('reporting_currency', 'JPY') | string | trim | upper) -}}
{%- endmacro %}

{#-
  An amount in `currency` converted to the reporting currency with `rate` (doc block fx_conversion):
  unchanged when it already is in the reporting currency, else amount * rate rounded half away from zero
  to the reporting currency's minor unit, as decimal(18,2) (the rounding rule: round() on a decimal rounds half
  away from zero on DuckDB, PostgreSQL and Spark alike; Spark's bround() would be banker's).
-#}
{% macro convert_money(amount, currency, rate) -%}
    {%- set digits = 0 if reporting_currency() in zero_decimal_currencies() else 2 -%}
    cast(
        case
            when {{ currency }} = '{{ reporting_currency() }}' then {{ amount }}
            else round({{ amount }} * {{ rate }}, {{ digits }})
        end
        as decimal(18, 2)
    )
{%- endmacro %}
