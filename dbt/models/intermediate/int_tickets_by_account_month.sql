{#- Support load per account and calendar month of ticket creation. -#}
with

tickets as (

    select * from {{ ref('stg_support__tickets') }}

),

monthly as (

    select
        account_id,
        cast({{ dbt.date_trunc('month', 'created_at') }} as date) as ticket_month,
        count(*) as tickets,
        count(case when priority = 'urgent' then 1 end) as urgent_tickets,
        count(solved_at) as solved_tickets,
        count(csat) as csat_responses,
        avg(cast(csat as {{ type_double() }})) as avg_csat
    from tickets
    group by
        account_id,
        cast({{ dbt.date_trunc('month', 'created_at') }} as date)

)

select * from monthly
