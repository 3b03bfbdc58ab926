{{ config(meta={"dagster": {"ref": {"name": "fct_segment_cohorts"}}}) }}

-- For every single-valued segment attribute, the accounts and customers of the cohorts add up
-- to the accounts and customers of fct_account_metrics on the build's as-of date, both over
-- the cohort-month rows and over the all-cohorts rows. (tech_stack_item counts an account
-- once per item, so it is left out.)
with

metrics as (

    select * from {{ ref('fct_account_metrics') }}
    where as_of_date = {{ as_of_date() }}

),

cohorts as (

    select * from {{ ref('fct_segment_cohorts') }}
    where as_of_date = {{ as_of_date() }} and segment_attribute <> 'tech_stack_item'

),

expected as (

    select
        count(*) as accounts,
        count(case when lifecycle_stage in ('customer', 'churned') then 1 end) as customers
    from metrics

),

published as (

    select
        segment_attribute,
        is_all_cohorts,
        sum(accounts) as accounts,
        sum(customers) as customers
    from cohorts
    group by segment_attribute, is_all_cohorts

),

compared as (

    select
        published.segment_attribute,
        published.is_all_cohorts,
        published.accounts,
        published.customers,
        expected.accounts as expected_accounts,
        expected.customers as expected_customers
    from published
    cross join expected

)

select * from compared
where accounts <> expected_accounts or customers <> expected_customers
