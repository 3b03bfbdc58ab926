with

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

aggregated as (

    select
        account_id,
        coalesce(
            sum(case when status = 'paid' then amount_usd end), 0
        ) as lifetime_revenue_usd
    from invoices
    group by account_id

)

select * from aggregated
