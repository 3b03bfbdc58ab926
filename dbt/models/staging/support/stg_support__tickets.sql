with

source as (

    select * from {{ source('raw', 'support__tickets') }}
    where _export_date <= {{ as_of_date() }}

),

latest as (

    {{ latest_version('source', 'ticket_id', has_is_deleted=false) }}

),

final as (

    select
        ticket_id,
        account_id,
        created_at,
        -- Solved after as_of_date: not solved yet on that date.
        {{ happened_by_as_of('solved_at') }} as solved_at,
        {{ normalize_slug('priority') }} as priority,
        {{ normalize_slug('status') }} as status,
        {{ normalize_slug('category') }} as category,
        csat,
        updated_at,
        _export_date as export_date
    from latest
    where created_at < {{ as_of_cutoff() }}

)

select * from final
