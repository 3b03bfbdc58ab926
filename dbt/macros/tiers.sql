{#- The order of the fit tiers (dagster_project/scoring: high, medium, low), 3 = high. -#}
{% macro tier_rank(fit_tier) -%}
    case {{ fit_tier }} when 'high' then 3 when 'medium' then 2 when 'low' then 1 end
{%- endmacro %}
