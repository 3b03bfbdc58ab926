with

usage as (

    select * from {{ ref('stg_product__usage') }}

),

windowed as (

    select
        account_id,
        feature,
        quantity,
        cast(occurred_at as date) as usage_date,
        occurred_at >= {{ dbt.dateadd('day', -30, as_of_cutoff()) }} as is_last_30_days,
        occurred_at >= {{ dbt.dateadd('day', -60, as_of_cutoff()) }}
        and occurred_at < {{ dbt.dateadd('day', -30, as_of_cutoff()) }} as is_prior_30_days,
        occurred_at >= {{ dbt.dateadd('day', -90, as_of_cutoff()) }} as is_last_90_days
    from usage

),

aggregated as (

    select
        account_id,
        count(distinct case when is_last_30_days then usage_date end)
            as usage_active_days_last_30_days,
        count(distinct case when is_last_90_days then usage_date end)
            as usage_active_days_last_90_days,
        count(distinct case when is_last_90_days then feature end) as features_used_last_90_days,
        {{ exact_sum('case when is_last_30_days then quantity end') }}
            as usage_quantity_last_30_days,
        {{ exact_sum('case when is_prior_30_days then quantity end') }}
            as usage_quantity_prior_30_days,
        max(usage_date) as last_usage_date
    from windowed
    group by account_id

),

final as (

    select
        *,
        -- Change of usage over the last 30 days against the 30 before (+0.5 = half again).
        {{ safe_ratio(
            'coalesce(usage_quantity_last_30_days, 0) - usage_quantity_prior_30_days',
            'usage_quantity_prior_30_days'
        ) }} as usage_trend
    from aggregated

)

select * from final
