{#-
    The median of an expression as an aggregate (continuous: the mean of the two middle values
    for an even count). Ordered-set syntax is the SQL standard (PostgreSQL, Snowflake,
    Redshift); DuckDB and BigQuery spell it differently.
-#}
{% macro median(expression) -%}
    {{ return(adapter.dispatch('median', 'icp_pipeline')(expression)) }}
{%- endmacro %}

{% macro default__median(expression) -%}
    percentile_cont(0.5) within group (order by {{ expression }})
{%- endmacro %}

{% macro duckdb__median(expression) -%}
    median({{ expression }})
{%- endmacro %}

{#- BigQuery has no ordered-set aggregate; its approximate quantile is exact for few values. -#}
{% macro bigquery__median(expression) -%}
    approx_quantiles({{ expression }}, 2)[offset(1)]
{%- endmacro %}

{#- numerator / denominator as a double; NULL when the denominator is 0 or NULL. -#}
{% macro safe_ratio(numerator, denominator) -%}
    cast({{ numerator }} as {{ type_double() }}) / nullif({{ denominator }}, 0)
{%- endmacro %}

{#-
    A sum of doubles that gives the same bits on every run. A float sum depends on the order
    the engine's threads deliver rows, so a rerun could differ in the last digits; summing
    as a DECIMAL (each term rounded to 10 decimal places) is exact and order-free.
-#}
{#- `decimal_places`: the exact sum rounded to that many places (half away from zero), before
    it becomes a double: the same digits on every engine, where rounding a double differs. -#}
{% macro exact_sum(expression, decimal_places=none) -%}
    {%- set total = "sum(cast(" ~ expression ~ " as decimal(38, 10)))" -%}
    {%- if decimal_places is not none -%}
        {%- set total = "round(coalesce(" ~ total ~ ", 0), " ~ decimal_places ~ ")" -%}
    {%- endif -%}
    cast({{ total }} as {{ type_double() }})
{%- endmacro %}
