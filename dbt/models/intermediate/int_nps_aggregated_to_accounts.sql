with

responses as (

    select * from {{ ref('stg_feedback__nps_responses') }}

),

aggregated as (

    select
        account_id,
        count(*) as nps_responses,
        avg(cast(score as {{ type_double() }})) as avg_nps_score,
        -- Promoters (9-10) minus detractors (0-6), in points of -100..100.
        {{ safe_ratio(
            "100 * (count(case when score >= 9 then 1 end)"
            ~ " - count(case when score <= 6 then 1 end))",
            "count(*)"
        ) }} as net_promoter_score
    from responses
    group by account_id

)

select * from aggregated
