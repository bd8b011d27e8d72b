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
    cast(floor(cast({{ numerator }} as {{ type_double() }}) / ({{ denominator }})) as {{ dbt.type_int() }})
{%- endmacro %}

{#- The business date of a UTC timestamp: the day it was in the business time zone (var
    business_utc_offset_hours, 9 for Asia/Tokyo, which has no daylight saving). Timestamps are stored in
    UTC; a touch at 08:30 JST on the 1st is the 1st, not the 31st of the previous month. -#}
{% macro business_date(timestamp_expression) -%}
    cast({{ dbt.dateadd('hour', var('business_utc_offset_hours'), timestamp_expression) }} as date)
{%- endmacro %}

{#- The date a whole number of business days (Monday to Friday; public holidays are not known to dbt) after a
    date, as a date. A Saturday or Sunday counts as the Friday before: one business day after a Saturday hand-off
    is Monday. Day of week 0 is Sunday on DuckDB and PostgreSQL alike. -#}
{% macro add_business_days(days, date_expression) -%}
    {%- set dow = 'cast(extract(dow from ' ~ date_expression ~ ') as ' ~ dbt.type_int() ~ ')' -%}
    {%- set back = 'case ' ~ dow ~ ' when 6 then 1 when 0 then 2 else 0 end' -%}
    {%- set weekday = 'case when ' ~ dow ~ ' in (0, 6) then 5 else ' ~ dow ~ ' end' -%}
    cast({{ dbt.dateadd(
        'day',
        '(' ~ days ~ ') - (' ~ back ~ ') + 2 * ' ~ integer_divide(weekday ~ ' - 1 + (' ~ days ~ ')', 5),
        date_expression
    ) }} as date)
{%- endmacro %}
