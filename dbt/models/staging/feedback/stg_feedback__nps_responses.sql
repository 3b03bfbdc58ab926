with

source as (

    select * from {{ source('raw', 'feedback__nps_responses') }}
    where _export_date <= {{ as_of_date() }}

),

latest as (

    select
        *,
        cast(null as {{ dbt.type_timestamp() }}) as updated_at
    from source

),

versions as (

    {{ latest_version('latest', ['account_id', 'responded_at'], has_is_deleted=false) }}

),

final as (

    select
        account_id,
        responded_at,
        score,
        _export_date as export_date
    from versions
    where responded_at < {{ as_of_cutoff() }}

)

select * from final
