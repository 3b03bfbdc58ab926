with

source as (

    select * from {{ source('raw', 'billing__subscriptions') }}
    where _export_date <= {{ as_of_date() }}

),

fx_rates as (

    select * from {{ ref('stg_reference__fx_rates') }}

),

latest as (

    {{ latest_version('source', 'subscription_id') }}

),

renamed as (

    select
        subscription_id,
        account_id,
        {{ clean_text('plan') }} as plan,
        mrr,
        coalesce({{ normalize_code('currency') }}, 'USD') as currency,
        started_at,
        ended_at,
        {{ normalize_slug('status') }} as status,
        updated_at,
        _export_date as export_date
    from latest
    where started_at < {{ as_of_cutoff() }}

),

as_of_state as (

    -- A subscription canceled to end after as_of_date was still running on that date.
    select
        subscription_id,
        account_id,
        plan,
        mrr,
        currency,
        started_at,
        {{ happened_by_as_of('ended_at') }} as ended_at,
        case
            when status = 'canceled' and ended_at >= {{ as_of_cutoff() }} then 'active'
            else status
        end as status,
        updated_at,
        export_date
    from renamed

),

converted as (

    select
        as_of_state.*,
        {{ to_usd('as_of_state.mrr', 'as_of_state.currency') }} as mrr_usd
    from as_of_state
    left join fx_rates
        on {{ fx_rate_join('as_of_state.currency', 'as_of_state.updated_at') }}

),

final as (

    select
        subscription_id,
        account_id,
        plan,
        mrr,
        currency,
        mrr_usd,
        started_at,
        ended_at,
        status,
        status in ('active', 'past_due') and ended_at is null as is_active,
        updated_at,
        export_date
    from converted

)

select * from final
