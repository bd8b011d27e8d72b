{#- Fails for every combination of the columns that occurs more than once (the model's grain).

    only_rebuilt_months=true (a model keyed by customer_id and month whose rows a month-grained incremental model
    keeps, docs/incremental.md "Data tests of the months kept"): when kizuna passes the first month the daily build
    may have written (var tested_from_month, else the environment variable KIZUNA_TESTED_FROM_MONTH), only the rows
    from that month are read, with those of the customers rebuilt from their own month (ops.rebuild_customers,
    when KIZUNA_REBUILD_ALL_CUSTOMERS_FROM_MONTH says the build rebuilt by customer). The rest were tested by the
    good build that wrote them and no row of this build shares their key: the scope is a predicate on the key.
    Unset, or with --full-refresh, every row is read. -#}
{% test unique_combination_of_columns(model, combination_of_columns, only_rebuilt_months=false) %}

{%- set tested_from = rebuild_from_month_iso('tested_from_month', 'KIZUNA_TESTED_FROM_MONTH')
    if only_rebuilt_months and not flags.FULL_REFRESH else none -%}
{%- set by_customer = tested_from is not none and rebuild_from_month_iso(
    'rebuild_all_customers_from_month', 'KIZUNA_REBUILD_ALL_CUSTOMERS_FROM_MONTH'
) is not none -%}

{%- set columns = [] -%}
{%- for column in combination_of_columns -%}
    {%- do columns.append('tested.' ~ column) -%}
{%- endfor -%}
select
    {{ columns | join(', ') }},
    count(*) as occurrences
from {{ model }} as tested
{%- if tested_from is not none %}
    {#- a join on customer_id, not `or exists` with a range predicate: at 1M customers that read 0.5 s, not 4 s -#}
    {%- if by_customer %}
    left join (
        select customer_id, min(month) as month
        from {{ api.Relation.create(schema='ops', identifier='rebuild_customers') }}
        group by customer_id
    ) as rebuilt
        on tested.customer_id = rebuilt.customer_id
    {%- endif %}
where
    tested.month >= cast('{{ tested_from }}' as date)
    {%- if by_customer %}
        or tested.month >= rebuilt.month
    {%- endif %}
{%- endif %}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
