with

source as (

    select * from {{ source('raw', 'product__usage') }}
    where _export_date <= {{ as_of_date() }}

),

latest as (

    -- No updated_at: a row exported again wins by its later export date.
    select
        *,
        cast(null as {{ dbt.type_timestamp() }}) as updated_at
    from source

),

versions as (

    {{ latest_version('latest', ['account_id', 'occurred_at', 'feature'], has_is_deleted=false) }}

),

final as (

    select
        account_id,
        occurred_at,
        {{ normalize_slug('feature') }} as feature,
        coalesce(quantity, 1) as quantity,
        _export_date as export_date
    from versions
    where occurred_at < {{ as_of_cutoff() }}

)

select * from final
