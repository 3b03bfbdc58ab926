{#-
    Whole months from `start_at` to `end_at` (Jan 31 -> Feb 28 is 0, Jan 15 -> Feb 15 is 1);
    dbt.datediff counts month boundaries crossed instead.
-#}
{% macro full_months_between(start_at, end_at) -%}
    (
        {{ dbt.datediff(start_at, end_at, 'month') }}
        - case
            when extract(day from {{ end_at }}) < extract(day from {{ start_at }})
                then 1
            else 0
        end
    )
{%- endmacro %}

{#- Timestamp `at` when it is before the as-of cutoff, else NULL (it has not happened yet). -#}
{% macro happened_by_as_of(at) -%}
    case when {{ at }} < {{ as_of_cutoff() }} then {{ at }} end
{%- endmacro %}
