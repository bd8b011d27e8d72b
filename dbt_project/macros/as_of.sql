{#- The as-of date: var `as_of` ('YYYY-MM-DD', a YAML date also works), else the environment variable
    KIZUNA_AS_OF (how kizuna passes it), else today's date where dbt runs. The variable is read only when dbt
    executes, never while it parses: a new date every day then leaves dbt's partial parsing valid, where a
    changed --vars value makes dbt parse the whole project again. -#}
{% macro as_of_iso() -%}
    {%- set unset = ('', 'None', 'null') -%}
    {%- set text = var('as_of', none) | string | trim -%}
    {%- if text in unset and execute -%}
        {%- set text = env_var('KIZUNA_AS_OF', '') | trim -%}
    {%- endif -%}
    {%- if text in unset -%}
        {{- return(modules.datetime.date.today().isoformat()) -}}
    {%- endif -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
        {{- exceptions.raise_compiler_error("var as_of must be a date 'YYYY-MM-DD', got '" ~ text ~ "'") -}}
    {%- endif -%}
    {%- do modules.datetime.date(text[0:4] | int, text[5:7] | int, text[8:10] | int) -%}
    {{- return(text) -}}
{%- endmacro %}

{#- SQL date literal of the as-of date. -#}
{% macro as_of_date() -%}
    cast('{{ as_of_iso() }}' as date)
{%- endmacro %}

{#- SQL date literal of the first day of the as-of month. -#}
{% macro as_of_month() -%}
    cast('{{ as_of_iso()[0:8] }}01' as date)
{%- endmacro %}
