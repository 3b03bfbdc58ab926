{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='as_of_date',
        on_schema_change='append_new_columns',
    )
}}
{#-
    One row per account and as-of date, like fct_account_metrics: a build replaces the rows of
    its own as_of_date, so a backfill of an older date leaves the newer dates as they were, and
    each date's facts, backtest and scores use the firmographics known on that date.
-#}
with

accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

banded as (

    select
        *,
        {{ size_band('employee_count') }} as size_band,
        {{ revenue_band('annual_revenue_usd') }} as revenue_band,
        {{ country_region('country') }} as region
    from accounts

),

final as (

    select
        {{ as_of_date() }} as as_of_date,
        cast(account_id as {{ dbt.type_string() }}) as account_id,
        cast(account_name as {{ dbt.type_string() }}) as account_name,
        cast(domain as {{ dbt.type_string() }}) as domain,
        cast(industry as {{ dbt.type_string() }}) as industry,
        cast(employee_count as {{ dbt.type_bigint() }}) as employee_count,
        cast(size_band as {{ dbt.type_string() }}) as size_band,
        cast(annual_revenue_usd as {{ type_double() }}) as annual_revenue_usd,
        cast(country as {{ dbt.type_string() }}) as country,
        cast(business_model as {{ dbt.type_string() }}) as business_model,
        cast(deployment as {{ dbt.type_string() }}) as deployment,
        cast(tech_stack as {{ dbt.type_string() }}) as tech_stack,
        cast(funding_stage as {{ dbt.type_string() }}) as funding_stage,
        cast(last_funding_at as {{ dbt.type_timestamp() }}) as last_funding_at,
        cast(open_roles as {{ dbt.type_bigint() }}) as open_roles,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(revenue_band as {{ dbt.type_string() }}) as revenue_band,
        cast(region as {{ dbt.type_string() }}) as region
    from banded

)

select * from final
