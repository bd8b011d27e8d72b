{#- The MRR a subscription contributes (doc block month_counting): its mrr, or 0 while trialing. -#}
{% macro counted_mrr(status, mrr) -%}
    case
        when {{ status }} = 'trialing' then cast(0 as decimal(18, 2))
        else coalesce({{ mrr }}, cast(0 as decimal(18, 2)))
    end
{%- endmacro %}
