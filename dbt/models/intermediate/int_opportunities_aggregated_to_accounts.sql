with

opportunities as (

    select * from {{ ref('stg_crm__opportunities') }}

),

measured as (

    select
        *,
        case
            when stage = 'won' and closed_at is not null
                then {{ dbt.datediff('created_at', 'closed_at', 'day') }}
        end as won_sales_cycle_days
    from opportunities

),

aggregated as (

    select
        account_id,
        count(case when stage = 'won' then 1 end) as opportunities_won,
        count(case when stage = 'lost' then 1 end) as opportunities_lost,
        count(case when stage = 'open' then 1 end) as opportunities_open,
        -- A won opportunity without closed_at was won when it was last updated.
        min(
            case when stage = 'won' then coalesce(closed_at, updated_at) end
        ) as first_won_at,
        {{ median('won_sales_cycle_days') }} as median_sales_cycle_days
    from measured
    group by account_id

)

select * from aggregated
