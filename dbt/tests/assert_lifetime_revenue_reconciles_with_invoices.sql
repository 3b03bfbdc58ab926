{{ config(meta={"dagster": {"ref": {"name": "fct_account_metrics"}}}) }}

-- Invoice revenue in staging (paid invoices of current accounts, USD) equals lifetime revenue
-- summed over the accounts of the build's as-of date, to the cent.
with

accounts as (

    select * from {{ ref('dim_accounts_history') }}
    where as_of_date = {{ as_of_date() }}

),

invoices as (

    select * from {{ ref('stg_billing__invoices') }}

),

metrics as (

    select * from {{ ref('fct_account_metrics') }}
    where as_of_date = {{ as_of_date() }}

),

staged as (

    select coalesce(sum(invoices.amount_usd), 0) as revenue_usd
    from invoices
    inner join accounts
        on invoices.account_id = accounts.account_id
    where invoices.status = 'paid'

),

published as (

    select coalesce(sum(lifetime_revenue_usd), 0) as revenue_usd
    from metrics

),

compared as (

    select
        staged.revenue_usd as staged_revenue_usd,
        published.revenue_usd as published_revenue_usd
    from staged
    cross join published

)

select * from compared
where abs(staged_revenue_usd - published_revenue_usd) >= 0.01
