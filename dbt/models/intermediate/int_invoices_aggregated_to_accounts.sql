with

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

aggregated as (

    select
        account_id,
        coalesce(
            {{ exact_sum("case when status = 'paid' then amount_usd end") }}, 0
        ) as lifetime_revenue_usd,
        -- Issued: sent to the customer and not cancelled (void) or still a draft.
        count(
            case when status in ('paid', 'open', 'uncollectible') then 1 end
        ) as invoices_issued,
        count(case when status = 'uncollectible' then 1 end) as invoices_failed
    from invoices
    group by account_id

),

final as (

    select
        *,
        {{ safe_ratio('invoices_failed', 'invoices_issued') }} as payment_failure_rate
    from aggregated

)

select * from final
