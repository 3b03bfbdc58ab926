{#-
    An 8-byte float for money and averages. dbt.type_float() is `float`, which DuckDB reads as
    a 4-byte REAL: cents would be lost on large amounts.
-#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'icp_pipeline')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double precision
{%- endmacro %}

{% macro duckdb__type_double() -%}
    double
{%- endmacro %}

{% macro bigquery__type_double() -%}
    float64
{%- endmacro %}

{% macro snowflake__type_double() -%}
    float
{%- endmacro %}
