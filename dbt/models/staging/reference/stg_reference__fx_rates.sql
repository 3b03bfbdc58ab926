with

source as (

    select * from {{ source('raw', 'fx_rates') }}

),

renamed as (

    select
        cast({{ adapter.quote('date') }} as date) as rate_date,
        {{ normalize_code('currency') }} as currency,
        usd_per_unit,
        _line_number
    from source

),

deduplicated as (

    -- Two rates for one currency on one day (times of day differ): the later line wins.
    select
        *,
        row_number() over (
            partition by currency, rate_date
            order by _line_number desc
        ) as row_rank
    from renamed

),

ranged as (

    select
        currency,
        rate_date,
        usd_per_unit,
        rate_date as valid_from_date,
        lead(rate_date) over (
            partition by currency
            order by rate_date
        ) as valid_to_date,
        row_number() over (
            partition by currency
            order by rate_date
        ) = 1 as is_first_rate
    from deduplicated
    where row_rank = 1

),

final as (

    select
        currency,
        rate_date,
        usd_per_unit,
        valid_from_date,
        valid_to_date,
        is_first_rate
    from ranged

)

select * from final
