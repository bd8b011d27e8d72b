{#-
  SQL that differs between the engines the project builds on (DuckDB, PostgreSQL, Spark): one macro per
  construct, dispatched on the adapter (default__ is DuckDB's and PostgreSQL's unless they differ). docs/scaling.md
  says what runs on Spark and how.
-#}

{#- An 8-byte float. Not dbt.type_float(): that is `float`, a 4-byte real in DuckDB but 8 bytes in PostgreSQL;
    Spark has no `double precision`. -#}
{% macro type_double() -%}
    {{- return(adapter.dispatch('type_double', 'kizuna')()) -}}
{%- endmacro %}

{% macro default__type_double() -%}
    {{- return('double precision') -}}
{%- endmacro %}

{% macro spark__type_double() -%}
    {{- return('double') -}}
{%- endmacro %}

{#- The text of a top-level key of a JSON object held as text (null when the key is missing). -#}
{% macro json_text(json_expression, key) -%}
    {{- adapter.dispatch('json_text', 'kizuna')(json_expression, key) -}}
{%- endmacro %}

{% macro default__json_text(json_expression, key) -%}
    cast({{ json_expression }} as json) ->> '{{ key }}'
{%- endmacro %}

{% macro spark__json_text(json_expression, key) -%}
    get_json_object({{ json_expression }}, '$.{{ key }}')
{%- endmacro %}

{#-
  The distinct non-null values of a text expression in a group, sorted ascending (byte order: the test server's
  PostgreSQL runs with locale C), joined with `delimiter`; null when the group has none. dbt.listagg keeps no order
  on Spark, hence this macro wherever the order shows.
-#}
{% macro string_agg_distinct_sorted(expression, delimiter) -%}
    {{- adapter.dispatch('string_agg_distinct_sorted', 'kizuna')(expression, delimiter) -}}
{%- endmacro %}

{% macro default__string_agg_distinct_sorted(expression, delimiter) -%}
    string_agg(distinct {{ expression }}, '{{ delimiter }}' order by {{ expression }})
{%- endmacro %}

{#- DuckDB: a plain list sorted afterwards costs a third of an ordered string_agg over ~13M groups. -#}
{% macro duckdb__string_agg_distinct_sorted(expression, delimiter) -%}
    array_to_string(list_sort(list(distinct {{ expression }}) filter (where {{ expression }} is not null)), '{{ delimiter }}')
{%- endmacro %}

{#- Spark: collect_set skips nulls and gives [] for none, so an empty group is made null explicitly. -#}
{% macro spark__string_agg_distinct_sorted(expression, delimiter) -%}
    case
        when count({{ expression }}) > 0
            then array_join(array_sort(collect_set({{ expression }})), '{{ delimiter }}')
    end
{%- endmacro %}
