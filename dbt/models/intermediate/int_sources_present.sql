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
    ('churn_events', 'stg_billing__churn_events'),
    ('usage', 'stg_product__usage'),
    ('nps_responses', 'stg_feedback__nps_responses'),
] %}

with

{% for entity, model in entities %}
{{ entity }} as (

    select count(*) as row_count from {{ ref(model) }}

),

{% endfor %}
account_churn_dates as (

    select count(churned_at) as row_count from {{ ref('stg_crm__accounts') }}

),

final as (

    select
        {{ as_of_date() }} as as_of_date,
        {%- for entity, model in entities %}
        cast({{ entity }}.row_count as {{ dbt.type_bigint() }}) as {{ entity }}_rows,
        {{ entity }}.row_count > 0 as has_{{ entity }},
        {%- endfor %}
        cast(account_churn_dates.row_count as {{ dbt.type_bigint() }}) as account_churn_dates_rows,
        -- Churn is known from subscriptions, churn events or the accounts' own churned_at.
        subscriptions.row_count > 0
        or churn_events.row_count > 0
        or account_churn_dates.row_count > 0 as has_churn_records
    from opportunities
    {%- for entity, model in entities[1:] %}
    cross join {{ entity }}
    {%- endfor %}
    cross join account_churn_dates

)

select * from final
