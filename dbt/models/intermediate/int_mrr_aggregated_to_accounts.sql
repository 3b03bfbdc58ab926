{#-
    Revenue retention and MRR history per account from the monthly MRR: MRR now and 12 months
    earlier, net and gross revenue retention, expansion over the last 12 months, and billed
    MRR summed over the customer's life (the denominator of support load per MRR).
-#}
with

monthly as (

    select * from {{ ref('int_account_mrr_monthly') }}

),

as_of_month as (

    select cast({{ dbt.date_trunc('month', as_of_date()) }} as date) as mrr_month

),

windows as (

    select
        as_of_month.mrr_month as current_month,
        cast({{ dbt.dateadd('month', -12, 'as_of_month.mrr_month') }} as date)
            as year_ago_month,
        cast({{ dbt.dateadd('month', -11, 'as_of_month.mrr_month') }} as date)
            as trailing_12_months_start
    from as_of_month

),

aggregated as (

    select
        monthly.account_id,
        min(monthly.mrr_month) as first_mrr_month,
        count(case when monthly.mrr_usd > 0 then 1 end) as billed_months,
        {{ exact_sum("monthly.mrr_usd") }} as cumulative_mrr_usd,
        coalesce(
            {{ exact_sum(
                "case when monthly.mrr_month = windows.current_month then monthly.mrr_usd end"
            ) }},
            0
        ) as mrr_usd,
        coalesce(
            {{ exact_sum(
                "case when monthly.mrr_month = windows.year_ago_month then monthly.mrr_usd end"
            ) }},
            0
        ) as mrr_12_months_ago_usd,
        coalesce(
            {{ exact_sum(
                "case when monthly.mrr_movement = 'expansion'"
                ~ " and monthly.mrr_month >= windows.trailing_12_months_start"
                ~ " then monthly.mrr_change_usd end"
            ) }},
            0
        ) as expansion_mrr_usd
    from monthly
    cross join windows
    group by monthly.account_id

),

final as (

    select
        account_id,
        first_mrr_month,
        billed_months,
        cumulative_mrr_usd,
        mrr_usd,
        mrr_12_months_ago_usd,
        expansion_mrr_usd,
        {{ safe_ratio('mrr_usd', 'mrr_12_months_ago_usd') }} as nrr_12m,
        {{ safe_ratio(
            'case when mrr_usd < mrr_12_months_ago_usd then mrr_usd '
            ~ 'else mrr_12_months_ago_usd end',
            'mrr_12_months_ago_usd'
        ) }} as grr_12m
    from aggregated

)

select * from final
