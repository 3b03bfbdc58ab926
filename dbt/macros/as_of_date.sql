{#-
    The point in time a build describes (YYYY-MM-DD): the var `as_of_date` (--vars, and unit
    tests' overrides), else the environment variable ICP_DBT_AS_OF_DATE (what the pipeline
    sets: a var that changes every day would make dbt parse the whole project again on every
    invocation), else the UTC date the run started. Every model reads it through these
    macros, never from var() or env_var() directly, so the rule lives in one place:

    - rows of exports dated after as_of_date are ignored;
    - events (created_at, occurred_at, issued_at, started_at, ...) at or after as_of_cutoff()
      (the first instant of the next day) have not happened yet.
-#}

{% macro as_of_date_string() -%}
    {%- set value = var('as_of_date', none)
        or env_var('ICP_DBT_AS_OF_DATE', '')
        or run_started_at.strftime('%Y-%m-%d') -%}
    {%- set value = value | string | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value) -%}
        {{ exceptions.raise_compiler_error(
            "var as_of_date must be a date YYYY-MM-DD, got '" ~ value ~ "'"
        ) }}
    {%- endif -%}
    {{- value -}}
{%- endmacro %}

{#- The as-of date as a SQL date. -#}
{% macro as_of_date() -%}
    cast('{{ as_of_date_string() }}' as date)
{%- endmacro %}

{#- The first instant after the as-of date: events at or after it are in the future. -#}
{% macro as_of_cutoff() -%}
    cast({{ dbt.dateadd('day', 1, as_of_date()) | trim }} as {{ dbt.type_timestamp() }})
{%- endmacro %}
