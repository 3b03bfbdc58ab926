with

tickets as (

    select * from {{ ref('stg_support__tickets') }}

),

aggregated as (

    select
        account_id,
        count(*) as tickets_total,
        count(
            case
                when created_at >= {{ dbt.dateadd('day', -90, as_of_cutoff()) }} then 1
            end
        ) as tickets_last_90_days,
        count(case when priority = 'urgent' then 1 end) as urgent_tickets,
        avg(cast(csat as {{ type_double() }})) as avg_csat
    from tickets
    group by account_id

)

select * from aggregated
