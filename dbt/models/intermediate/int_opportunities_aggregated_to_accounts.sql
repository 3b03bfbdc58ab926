with

opportunities as (

    select * from {{ ref('stg_crm__opportunities') }}

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
        ) as first_won_at
    from opportunities
    group by account_id

)

select * from aggregated
