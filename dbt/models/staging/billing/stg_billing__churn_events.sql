with

source as (

    select * from {{ source('raw', 'billing__churn_events') }}
    where _export_date <= {{ as_of_date() }}

),

latest as (

    {{ latest_version('source', 'churn_event_id', has_is_deleted=false) }}

),

final as (

    select
        churn_event_id,
        account_id,
        churned_at,
        {{ normalize_slug('reason') }} as reason,
        updated_at,
        _export_date as export_date
    from latest
    where churned_at < {{ as_of_cutoff() }}

)

select * from final
