with

source as (

    select * from {{ source('raw', 'crm__opportunities') }}
    where _export_date <= {{ as_of_date() }}

),

fx_rates as (

    select * from {{ ref('stg_reference__fx_rates') }}

),

latest as (

    {{ latest_version('source', 'opportunity_id') }}

),

renamed as (

    select
        opportunity_id,
        account_id,
        created_at,
        closed_at,
        {{ normalize_slug('stage') }} as stage,
        amount,
        coalesce({{ normalize_code('currency') }}, 'USD') as currency,
        {{ clean_text('lost_reason') }} as lost_reason,
        updated_at,
        _export_date as export_date
    from latest
    where created_at < {{ as_of_cutoff() }}

),

as_of_state as (

    -- An opportunity closed after as_of_date was still open on that date.
    select
        opportunity_id,
        account_id,
        created_at,
        {{ happened_by_as_of('closed_at') }} as closed_at,
        case
            when stage in ('won', 'lost') and closed_at >= {{ as_of_cutoff() }} then 'open'
            else stage
        end as stage,
        amount,
        currency,
        lost_reason,
        updated_at,
        export_date
    from renamed

),

converted as (

    select
        as_of_state.*,
        {{ to_usd('as_of_state.amount', 'as_of_state.currency') }} as amount_usd
    from as_of_state
    left join fx_rates
        on {{ fx_rate_join(
            'as_of_state.currency',
            'coalesce(as_of_state.closed_at, as_of_state.created_at)'
        ) }}

),

final as (

    select
        opportunity_id,
        account_id,
        created_at,
        closed_at,
        stage,
        amount,
        currency,
        amount_usd,
        lost_reason,
        updated_at,
        export_date
    from converted

)

select * from final
