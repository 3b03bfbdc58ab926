{#-
    Text normalisation shared by the staging models. Regular expressions differ between
    warehouses only in how "replace every match" is spelled, so that part is dispatched.
-#}

{#- Replace every match of a regular expression (RE2/POSIX subset: \s, [], +, ^, $, |). -#}
{% macro regexp_replace_all(expression, pattern, replacement) -%}
    {{ return(adapter.dispatch('regexp_replace_all', 'icp_pipeline')(expression, pattern, replacement)) }}
{%- endmacro %}

{% macro default__regexp_replace_all(expression, pattern, replacement) -%}
    regexp_replace({{ expression }}, '{{ pattern }}', '{{ replacement }}', 'g')
{%- endmacro %}

{#- Snowflake, BigQuery and Redshift replace every match by default and take no flag. -#}
{% macro snowflake__regexp_replace_all(expression, pattern, replacement) -%}
    regexp_replace({{ expression }}, '{{ pattern }}', '{{ replacement }}')
{%- endmacro %}

{% macro bigquery__regexp_replace_all(expression, pattern, replacement) -%}
    regexp_replace({{ expression }}, r'{{ pattern }}', '{{ replacement }}')
{%- endmacro %}

{% macro redshift__regexp_replace_all(expression, pattern, replacement) -%}
    regexp_replace({{ expression }}, '{{ pattern }}', '{{ replacement }}')
{%- endmacro %}

{#- Trimmed text; empty or blank becomes NULL. -#}
{% macro clean_text(expression) -%}
    nullif(trim({{ expression }}), '')
{%- endmacro %}

{#-
    A category as a lowercase slug: trimmed, lowercased, every run of spaces, underscores and
    hyphens collapsed to one underscore, no leading or trailing underscore.
    ' Fin Tech', 'fin-tech', 'FIN__TECH' -> 'fin_tech'.
-#}
{% macro normalize_slug(expression) -%}
    nullif(
        {{ regexp_replace_all(
            regexp_replace_all('lower(trim(' ~ expression ~ '))', '[\\s_-]+', '_'),
            '^_+|_+$',
            ''
        ) }},
        ''
    )
{%- endmacro %}

{#-
    A delimited list (tech_stack) lowercased with every item trimmed and empty items dropped:
    ' Snowflake ; DBT;;' -> 'snowflake;dbt'. Item order is kept.
-#}
{% macro normalize_list(expression, delimiter=';') -%}
    nullif(
        {{ regexp_replace_all(
            regexp_replace_all(
                'lower(' ~ expression ~ ')',
                '\\s*' ~ delimiter ~ '[\\s' ~ delimiter ~ ']*',
                delimiter
            ),
            '^\\s*' ~ delimiter ~ '|' ~ delimiter ~ '\\s*$|^\\s+|\\s+$',
            ''
        ) }},
        ''
    )
{%- endmacro %}

{#- Upper-case code such as a country or currency; blank becomes NULL. -#}
{% macro normalize_code(expression) -%}
    upper({{ clean_text(expression) }})
{%- endmacro %}

{#-
    The `position`-th (1-based) field of `text` split at `delimiter`, where `position` is an
    expression (dbt.split_part takes only a literal on PostgreSQL). DuckDB, PostgreSQL,
    Snowflake, Redshift and Spark SQL spell it the same.
-#}
{% macro split_part_at(text, delimiter, position) -%}
    {{ return(adapter.dispatch('split_part_at', 'icp_pipeline')(text, delimiter, position)) }}
{%- endmacro %}

{% macro default__split_part_at(text, delimiter, position) -%}
    split_part({{ text }}, {{ delimiter }}, {{ position }})
{%- endmacro %}
