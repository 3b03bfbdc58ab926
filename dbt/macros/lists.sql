{#-
    Lists in a column, the way each warehouse holds them. DuckDB has typed lists and structs
    (anti_icp_reasons VARCHAR[], factor_points STRUCT(factor, points)[]); PostgreSQL holds the
    reasons as text[] and a list of structs as a jsonb array of objects, the form
    dagster_project.postgres writes them in.
-#}

{#- The items of `list_column` not in `other_column` (NULL lists as empty), in their order;
    NULL when `list_column` is NULL. -#}
{% macro list_except(list_column, other_column) -%}
    {{ return(adapter.dispatch('list_except', 'icp_pipeline')(list_column, other_column)) }}
{%- endmacro %}

{% macro duckdb__list_except(list_column, other_column) -%}
    list_filter(
        {{ list_column }},
        lambda reason: not list_contains(coalesce({{ other_column }}, []), reason)  -- noqa: RF02
    )
{%- endmacro %}

{% macro postgres__list_except(list_column, other_column) -%}
    case when {{ list_column }} is not null then array(
        select items.item
        from unnest({{ list_column }}) with ordinality as items (item, position)
        where not items.item = any(coalesce({{ other_column }}, array[]::text[]))
        order by items.position
    ) end
{%- endmacro %}

{#- One row per factor of the scores in `scores` whose account is in `accounts`: account_id,
    factor, points. -#}
{% macro factor_point_rows(scores, accounts) -%}
    {{ return(adapter.dispatch('factor_point_rows', 'icp_pipeline')(scores, accounts)) }}
{%- endmacro %}

{% macro duckdb__factor_point_rows(scores, accounts) -%}
    select
        {{ scores }}.account_id,
        -- A list of structs unnested recursively: one row per factor, columns factor, points.
        unnest({{ scores }}.factor_points, recursive := true)  -- noqa: AL03
    from {{ scores }}
    inner join {{ accounts }}
        on {{ scores }}.account_id = {{ accounts }}.account_id
{%- endmacro %}

{% macro postgres__factor_point_rows(scores, accounts) -%}
    select
        {{ scores }}.account_id,
        factor_point.item ->> 'factor' as factor,
        cast(factor_point.item ->> 'points' as decimal(7, 2)) as points
    from {{ scores }}
    inner join {{ accounts }}
        on {{ scores }}.account_id = {{ accounts }}.account_id
    cross join lateral jsonb_array_elements({{ scores }}.factor_points) as factor_point (item)
{%- endmacro %}

{#- The moved factors of an account as a list, in move_rank order (an aggregate). -#}
{% macro changed_factor_list() -%}
    {{ return(adapter.dispatch('changed_factor_list', 'icp_pipeline')()) }}
{%- endmacro %}

{% macro duckdb__changed_factor_list() -%}
    list(
        {
            'factor': factor,
            'previous_points': previous_points,
            'points': points,
            'points_change': points_change
        }
        order by move_rank
    )
{%- endmacro %}

{% macro postgres__changed_factor_list() -%}
    jsonb_agg(
        jsonb_build_object(
            'factor', factor,
            'previous_points', previous_points,
            'points', points,
            'points_change', points_change
        )
        order by move_rank
    )
{%- endmacro %}

{#- `factor_list` (from changed_factor_list), an empty list when NULL, typed. -#}
{% macro changed_factors_or_empty(factor_list) -%}
    {{ return(adapter.dispatch('changed_factors_or_empty', 'icp_pipeline')(factor_list)) }}
{%- endmacro %}

{% macro duckdb__changed_factors_or_empty(factor_list) -%}
    cast(
        coalesce({{ factor_list }}, [])
        as struct(
            factor varchar,
            previous_points decimal(7, 2),
            points decimal(7, 2),
            points_change decimal(7, 2)
        )[]  -- noqa: LT01
    )
{%- endmacro %}

{% macro postgres__changed_factors_or_empty(factor_list) -%}
    coalesce({{ factor_list }}, cast('[]' as jsonb))
{%- endmacro %}
