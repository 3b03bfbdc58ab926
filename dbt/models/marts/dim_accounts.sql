with

accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

banded as (

    select
        *,
        case
            when employee_count is null then 'unknown'
            when employee_count < 20 then '1-19'
            when employee_count < 100 then '20-99'
            when employee_count < 500 then '100-499'
            when employee_count < 1000 then '500-999'
            else '1000+'
        end as size_band
    from accounts

),

final as (

    select
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
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at
    from banded

)

select * from final
