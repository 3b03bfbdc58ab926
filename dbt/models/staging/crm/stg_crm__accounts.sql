with

source as (

    select * from {{ source('raw', 'crm__accounts') }}
    where _export_date <= {{ as_of_date() }}

),

fx_rates as (

    select * from {{ ref('stg_reference__fx_rates') }}

),

industry_synonyms as (

    select * from {{ ref('industry_synonyms') }}

),

latest as (

    {{ latest_version('source', 'account_id') }}

),

renamed as (

    select
        account_id,
        trim(account_name) as account_name,
        lower({{ clean_text('domain') }}) as domain,
        {{ normalize_slug('industry') }} as industry,
        employee_count,
        annual_revenue,
        coalesce({{ normalize_code('currency') }}, 'USD') as currency,
        {{ normalize_code('country') }} as country,
        {{ normalize_slug('business_model') }} as business_model,
        {{ normalize_slug('deployment') }} as deployment,
        {{ normalize_list('tech_stack') }} as tech_stack,
        {{ normalize_slug('funding_stage') }} as funding_stage,
        -- A funding round dated after as_of_date was not known then.
        {{ happened_by_as_of('last_funding_at') }} as last_funding_at,
        open_roles,
        -- Churn recorded on the account itself (optional); after as_of_date not yet.
        {{ happened_by_as_of('churned_at') }} as churned_at,
        created_at,
        updated_at,
        _export_date as export_date
    from latest
    where created_at < {{ as_of_cutoff() }}

),

converted as (

    select
        renamed.*,
        coalesce(industry_synonyms.industry, renamed.industry) as canonical_industry,
        {{ to_usd('renamed.annual_revenue', 'renamed.currency') }} as annual_revenue_usd
    from renamed
    left join industry_synonyms
        on renamed.industry = industry_synonyms.spelling
    left join fx_rates
        on {{ fx_rate_join('renamed.currency', 'renamed.updated_at') }}

),

final as (

    select
        account_id,
        account_name,
        domain,
        canonical_industry as industry,
        employee_count,
        annual_revenue,
        currency,
        annual_revenue_usd,
        country,
        business_model,
        deployment,
        tech_stack,
        funding_stage,
        last_funding_at,
        open_roles,
        -- Churn recorded on the account itself (optional); after as_of_date not yet.
        {{ happened_by_as_of('churned_at') }} as churned_at,
        created_at,
        updated_at,
        export_date
    from converted

)

select * from final
