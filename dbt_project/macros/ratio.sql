{#- numerator / denominator in double precision; null when the denominator is 0 (a rate of nothing is
    unknown, not 0). Not dbt.type_float(): that is `float`, a 4-byte real in DuckDB but 8 bytes in PostgreSQL. -#}
{% macro ratio(numerator, denominator) -%}
    case
        when ({{ denominator }}) <> 0
            then cast(({{ numerator }}) as {{ type_double() }}) / ({{ denominator }})
    end
{%- endmacro %}
