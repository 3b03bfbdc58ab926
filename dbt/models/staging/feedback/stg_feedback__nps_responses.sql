with

source as (

    select * from {{ source('raw', 'feedback__nps_responses') }}
    where _export_date <= {{ as_of_date() }}

),

latest as (

    {{ latest_version(
        'source', ['account_id', 'responded_at'], has_is_deleted=false, has_updated_at=false
    ) }}

),

final as (

    select
        account_id,
        responded_at,
        score,
        _export_date as export_date
    from latest
    where responded_at < {{ as_of_cutoff() }}

)

select * from final
