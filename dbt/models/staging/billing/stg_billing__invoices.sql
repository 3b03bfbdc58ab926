with

source as (

    select * from {{ source('raw', 'billing__invoices') }}
    where _export_date <= {{ as_of_date() }}

),

fx_rates as (

    select * from {{ ref('stg_reference__fx_rates') }}

),

latest as (

    {{ latest_version('source', 'invoice_id', has_is_deleted=false) }}

),

renamed as (

    select
        invoice_id,
        account_id,
        {{ clean_text('subscription_id') }} as subscription_id,
        issued_at,
        amount,
        coalesce({{ normalize_code('currency') }}, 'USD') as currency,
        {{ normalize_slug('status') }} as status,
        paid_at,
        updated_at,
        _export_date as export_date
    from latest
    where issued_at < {{ as_of_cutoff() }}

),

as_of_state as (

    -- An invoice paid after as_of_date was still open on that date.
    select
        invoice_id,
        account_id,
        subscription_id,
        issued_at,
        amount,
        currency,
        case
            when status = 'paid' and paid_at >= {{ as_of_cutoff() }} then 'open'
            else status
        end as status,
        {{ happened_by_as_of('paid_at') }} as paid_at,
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
        on {{ fx_rate_join('as_of_state.currency', 'as_of_state.issued_at') }}

),

final as (

    select
        invoice_id,
        account_id,
        subscription_id,
        issued_at,
        amount,
        currency,
        amount_usd,
        status,
        paid_at,
        updated_at,
        export_date
    from converted

)

select * from final
