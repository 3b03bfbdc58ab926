{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='as_of_date',
        on_schema_change='append_new_columns',
    )
}}
{#-
    Outcomes by segment (one attribute = one value) and acquisition cohort (the month the
    account was created), as of as_of_date, plus one all-cohorts row per segment. Incremental
    by as_of_date like fct_account_metrics. Cells are never hidden: few customers set
    low_sample.
-#}
with

accounts as (

    select * from {{ ref('dim_accounts_history') }}
    where as_of_date = {{ as_of_date() }}

),

metrics as (

    select * from {{ ref('fct_account_metrics') }}
    where as_of_date = {{ as_of_date() }}

),

integers as (

    select n from {{ integer_series(100) }} as integers

),

tech_stack_items as (

    -- One row per item of the ';'-separated list (items are trimmed and non-empty there).
    select distinct
        accounts.account_id,
        {{ split_part_at('accounts.tech_stack', "';'", 'integers.n + 1') }} as item
    from accounts
    inner join integers
        on integers.n <= {{ dbt.length('accounts.tech_stack') }}
            - {{ dbt.length(dbt.replace('accounts.tech_stack', "';'", "''")) }}
    where accounts.tech_stack is not null

),

segments as (

    {%- set single_valued = [
        'industry', 'size_band', 'revenue_band', 'country', 'region', 'business_model',
        'deployment', 'funding_stage'
    ] %}
    {%- for attribute in single_valued %}
    select
        account_id,
        '{{ attribute }}' as segment_attribute,
        coalesce({{ attribute }}, 'unknown') as segment_value
    from accounts
    union all
    {%- endfor %}
    select
        account_id,
        'tech_stack_item' as segment_attribute,
        item as segment_value
    from tech_stack_items
    union all
    select
        account_id,
        'tech_stack_item' as segment_attribute,
        'unknown' as segment_value
    from accounts
    where tech_stack is null

),

account_outcomes as (

    select
        metrics.account_id,
        cast({{ dbt.date_trunc('month', 'accounts.created_at') }} as date) as cohort_month,
        metrics.lifecycle_stage in ('customer', 'churned') as is_customer_ever,
        metrics.lifecycle_stage = 'customer' as is_customer_now,
        metrics.opportunities_won,
        metrics.opportunities_lost,
        metrics.is_churned,
        metrics.months_to_churn,
        case
            when metrics.customer_since_at is not null
                then {{ full_months_between('metrics.customer_since_at', as_of_date()) }}
        end as months_since_customer_start,
        metrics.current_mrr_usd,
        metrics.mrr_12_months_ago_usd,
        metrics.lifetime_revenue_usd,
        metrics.cumulative_mrr_usd,
        metrics.tickets_total,
        metrics.csat_responses,
        metrics.avg_csat
    from metrics
    inner join accounts
        on metrics.account_id = accounts.account_id

),

retention as (

    {%- for months in [3, 6, 12] %}
    {%- if loop.first %}
    select
        *,
    {%- endif %}
        -- Without billing, whether a customer stayed is unknown: not eligible, not 0%.
        is_customer_ever and is_churned is not null
        and months_since_customer_start >= {{ months }} as is_eligible_{{ months }}m,
        is_customer_ever and months_since_customer_start >= {{ months }}
        and (not is_churned or months_to_churn >= {{ months }}) as is_retained_{{ months }}m
        {{- ',' if not loop.last }}
    {%- endfor %}
    from account_outcomes

),

segmented as (

    select
        segments.segment_attribute,
        segments.segment_value,
        retention.*
    from segments
    inner join retention
        on segments.account_id = retention.account_id

),

grains as (

    select false as is_all_cohorts
    union all
    select true as is_all_cohorts

),

cohort_grains as (

    -- Every row twice: once in its cohort month, once in the all-cohorts row (month NULL).
    select
        segmented.*,
        grains.is_all_cohorts,
        case when not grains.is_all_cohorts then segmented.cohort_month end as grain_month
    from segmented
    cross join grains

),

aggregated as (

    select
        segment_attribute,
        segment_value,
        grain_month as cohort_month,
        is_all_cohorts,
        count(*) as accounts,
        count(case when is_customer_ever then 1 end) as customers,
        count(case when is_customer_now then 1 end) as current_customers,
        sum(opportunities_won) as opportunities_won,
        sum(opportunities_lost) as opportunities_lost,
        {%- for months in [3, 6, 12] %}
        count(case when is_eligible_{{ months }}m then 1 end) as customers_eligible_{{ months }}m,
        count(case when is_retained_{{ months }}m then 1 end) as customers_retained_{{ months }}m,
        {%- endfor %}
        count(case when mrr_12_months_ago_usd > 0 then 1 end) as customers_12_months_ago,
        {{ exact_sum("case when mrr_12_months_ago_usd > 0 then mrr_12_months_ago_usd end") }}
            as mrr_12_months_ago_usd,
        {{ exact_sum("case when mrr_12_months_ago_usd > 0 then current_mrr_usd end") }}
            as retained_mrr_usd,
        {{ exact_sum(
            "case when mrr_12_months_ago_usd > 0 then least(current_mrr_usd, mrr_12_months_ago_usd) end"
        ) }} as retained_mrr_without_expansion_usd,
        {{ median('case when current_mrr_usd > 0 then current_mrr_usd end') }}
            as median_mrr_usd,
        sum(case when is_customer_ever then tickets_total end) as customer_tickets,
        {{ exact_sum("case when is_customer_ever then cumulative_mrr_usd end") }} as cumulative_mrr_usd,
        sum(csat_responses) as csat_responses,
        {{ exact_sum("avg_csat * csat_responses") }} as csat_points,
        {{ exact_sum("case when is_customer_ever then lifetime_revenue_usd end") }}
            as customer_lifetime_revenue_usd
    from cohort_grains
    group by segment_attribute, segment_value, grain_month, is_all_cohorts

),

final as (

    select
        {{ as_of_date() }} as as_of_date,
        cast(segment_attribute as {{ dbt.type_string() }}) as segment_attribute,
        cast(segment_value as {{ dbt.type_string() }}) as segment_value,
        cast(cohort_month as date) as cohort_month,
        cast(is_all_cohorts as {{ dbt.type_boolean() }}) as is_all_cohorts,
        cast(accounts as {{ dbt.type_bigint() }}) as accounts,
        cast(customers as {{ dbt.type_bigint() }}) as customers,
        cast(current_customers as {{ dbt.type_bigint() }}) as current_customers,
        cast(opportunities_won as {{ dbt.type_bigint() }}) as opportunities_won,
        cast(opportunities_lost as {{ dbt.type_bigint() }}) as opportunities_lost,
        cast(
            {{ safe_ratio('opportunities_won', 'opportunities_won + opportunities_lost') }}
            as {{ type_double() }}
        ) as win_rate,
        {%- for months in [3, 6, 12] %}
        cast(customers_eligible_{{ months }}m as {{ dbt.type_bigint() }})
            as customers_eligible_{{ months }}m,
        cast(
            {{ safe_ratio('customers_retained_' ~ months ~ 'm',
                          'customers_eligible_' ~ months ~ 'm') }}
            as {{ type_double() }}
        ) as logo_retention_{{ months }}m,
        {%- endfor %}
        cast(customers_12_months_ago as {{ dbt.type_bigint() }}) as customers_12_months_ago,
        cast(
            {{ safe_ratio('retained_mrr_usd', 'mrr_12_months_ago_usd') }}
            as {{ type_double() }}
        ) as nrr_12m,
        cast(
            {{ safe_ratio('retained_mrr_without_expansion_usd', 'mrr_12_months_ago_usd') }}
            as {{ type_double() }}
        ) as grr_12m,
        cast(median_mrr_usd as {{ type_double() }}) as median_mrr_usd,
        cast(
            {{ safe_ratio('1000.0 * customer_tickets', 'cumulative_mrr_usd') }}
            as {{ type_double() }}
        ) as tickets_per_1k_mrr_usd,
        cast({{ safe_ratio('csat_points', 'csat_responses') }} as {{ type_double() }})
            as avg_csat,
        cast(
            {{ safe_ratio('customer_lifetime_revenue_usd', 'customers') }}
            as {{ type_double() }}
        ) as ltv_proxy_usd,
        cast(
            customers < {{ var('low_sample_customers', 10) }} as {{ dbt.type_boolean() }}
        ) as low_sample
    from aggregated

)

select * from final
