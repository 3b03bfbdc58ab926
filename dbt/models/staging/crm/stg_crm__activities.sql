with

source as (

    select * from {{ source('raw', 'crm__activities') }}
    where _export_date <= {{ as_of_date() }}

),

latest as (

    {{ latest_version('source', 'activity_id', has_is_deleted=false) }}

),

final as (

    select
        activity_id,
        account_id,
        occurred_at,
        {{ normalize_slug('activity_type') }} as activity_type,
        updated_at,
        _export_date as export_date
    from latest
    where occurred_at < {{ as_of_cutoff() }}

)

select * from final
