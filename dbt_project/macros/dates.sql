{#- First day of the month of a date, as a date (DuckDB's date_trunc returns a timestamp). -#}
{% macro month_of(date_expression) -%}
    cast({{ dbt.date_trunc('month', date_expression) }} as date)
{%- endmacro %}

{#- A date moved by a whole number of months, as a date; month ends clamp (Jan 31 + 1 month = Feb 28/29). -#}
{% macro add_months(months_expression, date_expression) -%}
    cast({{ dbt.dateadd('month', months_expression, date_expression) }} as date)
{%- endmacro %}

{#- Floor of a non-negative integer quotient; DuckDB's `/` is float division, PostgreSQL's truncates. -#}
{% macro integer_divide(numerator, denominator) -%}
    cast(floor(cast({{ numerator }} as double precision) / ({{ denominator }})) as {{ dbt.type_int() }})
{%- endmacro %}
