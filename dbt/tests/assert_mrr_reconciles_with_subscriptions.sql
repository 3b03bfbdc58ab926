{{ config(meta={"dagster": {"ref": {"name": "fct_account_metrics"}}}) }}

-- Total MRR in the mart equals the MRR of the running subscriptions of current accounts in
-- staging (nothing lost or double counted by the joins), to the cent.
with

accounts as (

    select * from {{ ref('dim_accounts_history') }}
    where as_of_date = {{ as_of_date() }}

),

subscriptions as (

    select * from {{ ref('stg_billing__subscriptions') }}

),

metrics as (

    select * from {{ ref('fct_account_metrics') }}
    where as_of_date = {{ as_of_date() }}

),

staged as (

    select coalesce(sum(subscriptions.mrr_usd), 0) as mrr_usd
    from subscriptions
    inner join accounts
        on subscriptions.account_id = accounts.account_id
    where subscriptions.is_active

),

published as (

    select coalesce(sum(current_mrr_usd), 0) as mrr_usd
    from metrics

),

compared as (

    select
        staged.mrr_usd as staged_mrr_usd,
        published.mrr_usd as published_mrr_usd
    from staged
    cross join published

)

select * from compared
where abs(staged_mrr_usd - published_mrr_usd) >= 0.01
