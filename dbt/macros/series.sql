{#-
    The integers 0 .. upper - 1 as a subquery with one column `n`, from cross-joined digits:
    portable (no generate_series / range / unnest), and enough for month spines and list
    positions. `upper` must be a power of ten between 10 and 10000.
-#}
{% macro integer_series(upper) -%}
    {%- set digits = (upper | string | length) - 1 -%}
    {%- if upper not in [10, 100, 1000, 10000] -%}
        {{ exceptions.raise_compiler_error("integer_series: upper must be 10, 100, 1000 or 10000") }}
    {%- endif -%}
    (
        select
            {% for i in range(digits) -%}
            d{{ i }}.n * {{ 10 ** i }}{{ ' + ' if not loop.last }}
            {%- endfor %} as n
        from
            {% for i in range(digits) -%}
            (
                select 0 as n union all select 1 union all select 2 union all select 3
                union all select 4 union all select 5 union all select 6 union all select 7
                union all select 8 union all select 9
            ) as d{{ i }}{{ ',' if not loop.last }}
            {% endfor %}
    )
{%- endmacro %}
