{#-
  A band label for a non-negative number, from ascending lower bounds (a dbt var): bounds [12, 24]
  give '0-11', '12-23', '24+' (with `unit` appended to nothing; labels stay short for charts);
  null becomes `null_label`.
-#}
{% macro band(expression, bounds, first_lower=0, null_label='unknown') -%}
    case
        when {{ expression }} is null then '{{ null_label }}'
        {%- set lowers = [first_lower] + (bounds | list) %}
        {%- for upper in bounds %}
        when {{ expression }} < {{ upper }} then '{{ lowers[loop.index0] }}-{{ upper - 1 }}'
        {%- endfor %}
        else '{{ bounds | last }}+'
    end
{%- endmacro %}

{#- The labels band() can return, in order (for accepted_values and docs). -#}
{% macro band_labels(bounds, first_lower=0, null_label='unknown') -%}
    {%- set lowers = [first_lower] + (bounds | list) -%}
    {%- set labels = [] -%}
    {%- for upper in bounds -%}
        {%- do labels.append(lowers[loop.index0] ~ '-' ~ (upper - 1)) -%}
    {%- endfor -%}
    {%- do labels.append((bounds | last) ~ '+') -%}
    {%- do labels.append(null_label) -%}
    {{- return(labels) -}}
{%- endmacro %}

{#- A score clamped to 0..100 and rounded half away from zero to a whole number. Rounded as a decimal:
    PostgreSQL rounds a double's halves to even, DuckDB away from zero; both round decimals away from zero. -#}
{% macro clamp_score(expression) -%}
    cast(round(cast(
        case
            when ({{ expression }}) < 0 then 0
            when ({{ expression }}) > 100 then 100
            else ({{ expression }})
        end
    as decimal(18, 6))) as {{ dbt.type_int() }})
{%- endmacro %}
