with

activities as (

    select * from {{ ref('stg_crm__activities') }}

),

aggregated as (

    -- Windows end with as_of_date and include it: the last 30 days are as_of_date - 29
    -- through as_of_date.
    select
        account_id,
        count(
            case
                when occurred_at >= {{ dbt.dateadd('day', -30, as_of_cutoff()) }} then 1
            end
        ) as activities_last_30_days,
        count(
            case
                when occurred_at >= {{ dbt.dateadd('day', -90, as_of_cutoff()) }} then 1
            end
        ) as activities_last_90_days
    from activities
    group by account_id

)

select * from aggregated
