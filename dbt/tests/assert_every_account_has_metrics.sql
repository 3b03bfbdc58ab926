{{ config(meta={"dagster": {"ref": {"name": "fct_account_metrics"}}}) }}

-- Every account of dim_accounts_history has its row in fct_account_metrics for the build's as-of date
-- (the relationships test on fct_account_metrics checks the other direction).
with

accounts as (

    select * from {{ ref('dim_accounts_history') }}
    where as_of_date = {{ as_of_date() }}

),

metrics as (

    select * from {{ ref('fct_account_metrics') }}
    where as_of_date = {{ as_of_date() }}

),

missing as (

    select accounts.account_id
    from accounts
    left join metrics
        on accounts.account_id = metrics.account_id
    where metrics.account_id is null

)

select * from missing
