with

source as (

    select * from {{ source('raw', 'product__usage') }}
    where _export_date <= {{ as_of_date() }}

),

latest as (

    {{ latest_version(
        'source', ['account_id', 'occurred_at', 'feature'], has_is_deleted=false, has_updated_at=false
    ) }}

),

final as (

    select
        account_id,
        occurred_at,
        {{ normalize_slug('feature') }} as feature,
        coalesce(quantity, 1) as quantity,
        _export_date as export_date
    from latest
    where occurred_at < {{ as_of_cutoff() }}

)

select * from final
