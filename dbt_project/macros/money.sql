{#- ISO 4217 currencies without a minor unit (exponent 0); every other currency is kept to 2 decimals. -#}
{% macro zero_decimal_currencies() -%}
    {{ return(['JPY', 'KRW', 'VND', 'CLP', 'ISK', 'PYG', 'UGX', 'XAF', 'XOF', 'XPF', 'BIF', 'DJF', 'GNF', 'KMF', 'RWF', 'VUV']) }}
{%- endmacro %}

{#-
  amount / divisor, rounded half away from zero to the currency's minor unit, as an exact decimal(18,2)
  (doc block mrr_normalisation). Computed on whole hundredths: round(n / d) = (2n + d) div 2d, with the
  division made exact by subtracting the remainder first, so DuckDB (whose `/` on decimals and integers
  returns a double) and PostgreSQL (whose `/` on integers truncates) give the same digits.
-#}
{% macro divide_money(amount, divisor, currency) -%}
    {%- set hundredths = 'cast(abs(' ~ amount ~ ') * 100 as ' ~ dbt.type_bigint() ~ ')' -%}
    {%- set step = "(case when upper(" ~ currency ~ ") in ('" ~ zero_decimal_currencies() | join("', '") ~ "') then 100 else 1 end)" -%}
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
