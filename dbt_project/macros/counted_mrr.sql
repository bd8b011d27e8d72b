{#- The MRR a subscription contributes on a snapshot day (doc block month_counting): its mrr; 0 while
    trialing; 0 while paused, which status can only tell for the as-of date (`is_as_of_snapshot`). -#}
{% macro counted_mrr(status, mrr, is_as_of_snapshot='true') -%}
    case
        when {{ status }} = 'trialing' then cast(0 as decimal(18, 2))
        when {{ status }} = 'paused' and {{ is_as_of_snapshot }} then cast(0 as decimal(18, 2))
        else coalesce({{ mrr }}, cast(0 as decimal(18, 2)))
    end
{%- endmacro %}
