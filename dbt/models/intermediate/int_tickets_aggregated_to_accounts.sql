with

tickets as (

    select * from {{ ref('stg_support__tickets') }}

),

measured as (

    select
        *,
        -- Minutes, not hours: datediff counts boundaries crossed, which would round.
        {{ dbt.datediff('created_at', 'solved_at', 'minute') }} / 60.0 as resolution_hours
    from tickets

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
        count(csat) as csat_responses,
        avg(cast(csat as {{ type_double() }})) as avg_csat,
        {{ median('resolution_hours') }} as median_resolution_hours
    from measured
    group by account_id

)

select * from aggregated
