{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='as_of_date',
    )
}}
{#-
    Which optional sources the company has as of as_of_date: one row per date, a row count
    and a has_<entity> flag per entity. Only crm/accounts is required; an entity with no
    current row (no file, a header-only file, every key deleted) is absent, and the facts that
    need it are NULL rather than 0. Incremental by as_of_date like the facts, so a test can
    read the flags of each date the facts hold.
-#}
{%- set entities = [
    ('opportunities', 'stg_crm__opportunities'),
    ('activities', 'stg_crm__activities'),
    ('subscriptions', 'stg_billing__subscriptions'),
    ('invoices', 'stg_billing__invoices'),
    ('tickets', 'stg_support__tickets'),
] %}

with

{% for entity, model in entities %}
{{ entity }} as (

    select count(*) as row_count from {{ ref(model) }}

),

{% endfor %}
final as (

    select
        {{ as_of_date() }} as as_of_date,
        {%- for entity, model in entities %}
        cast({{ entity }}.row_count as {{ dbt.type_bigint() }}) as {{ entity }}_rows,
        {{ entity }}.row_count > 0 as has_{{ entity }}{{ "," if not loop.last }}
        {%- endfor %}
    from opportunities
    {%- for entity, model in entities[1:] %}
    cross join {{ entity }}
    {%- endfor %}

)

select * from final
