{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='as_of_date',
        on_schema_change='append_new_columns',
    )
}}
{#-
    One row per account and as-of date. Incremental by as_of_date: a build deletes the rows of
    its own as_of_date and inserts them again, so a backfill of date D replaces exactly D's
    rows and the other dates stay (the contract is checked on every build).
-#}
with

accounts as (

    select * from {{ ref('dim_accounts_history') }}
    where as_of_date = {{ as_of_date() }}

),

opportunities as (

    select * from {{ ref('int_opportunities_aggregated_to_accounts') }}

),

subscriptions as (

    select * from {{ ref('int_subscriptions_aggregated_to_accounts') }}

),

mrr as (

    select * from {{ ref('int_mrr_aggregated_to_accounts') }}

),

invoices as (

    select * from {{ ref('int_invoices_aggregated_to_accounts') }}

),

tickets as (

    select * from {{ ref('int_tickets_aggregated_to_accounts') }}

),

activities as (

    select * from {{ ref('int_activities_aggregated_to_accounts') }}

),

churn_records as (

    select * from {{ ref('int_churn_aggregated_to_accounts') }}

),

usage as (

    select * from {{ ref('int_usage_aggregated_to_accounts') }}

),

nps as (

    select * from {{ ref('int_nps_aggregated_to_accounts') }}

),

sources as (

    select * from {{ ref('int_sources_present') }}
    where as_of_date = {{ as_of_date() }}

),

joined as (

    select
        accounts.account_id,
        accounts.last_funding_at,
        accounts.open_roles,
        case when sources.has_opportunities then coalesce(opportunities.opportunities_won, 0) end
            as opportunities_won,
        case when sources.has_opportunities then coalesce(opportunities.opportunities_lost, 0) end
            as opportunities_lost,
        case when sources.has_opportunities then coalesce(opportunities.opportunities_open, 0) end
            as opportunities_open,
        opportunities.first_won_at,
        opportunities.median_sales_cycle_days,
        case when sources.has_subscriptions then coalesce(subscriptions.active_subscriptions, 0) end
            as active_subscriptions,
        case when sources.has_subscriptions then coalesce(subscriptions.customer_subscriptions, 0) end
            as customer_subscriptions,
        case when sources.has_subscriptions then coalesce(subscriptions.current_mrr_usd, 0) end
            as current_mrr_usd,
        subscriptions.first_subscription_started_at,
        subscriptions.last_subscription_started_at,
        subscriptions.last_subscription_ended_at,
        case when sources.has_subscriptions then coalesce(mrr.mrr_12_months_ago_usd, 0) end
            as mrr_12_months_ago_usd,
        case when sources.has_subscriptions then coalesce(mrr.expansion_mrr_usd, 0) end
            as expansion_mrr_usd,
        case when sources.has_subscriptions then coalesce(mrr.cumulative_mrr_usd, 0) end
            as cumulative_mrr_usd,
        mrr.nrr_12m,
        mrr.grr_12m,
        case when sources.has_invoices then coalesce(invoices.lifetime_revenue_usd, 0) end
            as lifetime_revenue_usd,
        case when sources.has_invoices then coalesce(invoices.invoices_issued, 0) end
            as invoices_issued,
        case when sources.has_invoices then coalesce(invoices.invoices_failed, 0) end
            as invoices_failed,
        invoices.payment_failure_rate,
        case when sources.has_tickets then coalesce(tickets.tickets_total, 0) end
            as tickets_total,
        case when sources.has_tickets then coalesce(tickets.tickets_last_90_days, 0) end
            as tickets_last_90_days,
        case when sources.has_tickets then coalesce(tickets.urgent_tickets, 0) end
            as urgent_tickets,
        case when sources.has_tickets then coalesce(tickets.csat_responses, 0) end
            as csat_responses,
        tickets.avg_csat,
        tickets.median_resolution_hours,
        case when sources.has_activities then coalesce(activities.activities_last_30_days, 0) end
            as activities_last_30_days,
        case when sources.has_activities then coalesce(activities.activities_last_90_days, 0) end
            as activities_last_90_days,
        churn_records.last_churn_recorded_at,
        churn_records.churn_reason,
        case when sources.has_usage then coalesce(usage.usage_active_days_last_30_days, 0) end
            as usage_active_days_last_30_days,
        case when sources.has_usage then coalesce(usage.usage_active_days_last_90_days, 0) end
            as usage_active_days_last_90_days,
        case when sources.has_usage then coalesce(usage.features_used_last_90_days, 0) end
            as features_used_last_90_days,
        usage.usage_trend,
        usage.last_usage_date,
        case when sources.has_nps_responses then coalesce(nps.nps_responses, 0) end
            as nps_responses,
        nps.avg_nps_score,
        nps.net_promoter_score,
        sources.has_subscriptions,
        sources.has_churn_records
    from accounts
    cross join sources
    left join opportunities
        on accounts.account_id = opportunities.account_id
    left join subscriptions
        on accounts.account_id = subscriptions.account_id
    left join mrr
        on accounts.account_id = mrr.account_id
    left join invoices
        on accounts.account_id = invoices.account_id
    left join tickets
        on accounts.account_id = tickets.account_id
    left join activities
        on accounts.account_id = activities.account_id
    left join churn_records
        on accounts.account_id = churn_records.account_id
    left join usage
        on accounts.account_id = usage.account_id
    left join nps
        on accounts.account_id = nps.account_id

),

recorded as (

    select
        *,
        coalesce(
            last_churn_recorded_at is not null
            and (
                last_subscription_started_at is null
                or last_churn_recorded_at >= last_subscription_started_at
            ),
            false
        ) as is_churned_by_record
    from joined

),

lifecycle as (

    -- Billing is the truth about being a customer: a running subscription makes one, and a
    -- past (non-trial) subscription with none running now makes a churned one. A won deal
    -- with no subscription at all yet counts as a customer (billing lags the CRM).
    select
        *,
        case
            -- A churn record (a churn event, the account's churned_at) with no subscription
            -- started since: churned, even if billing still shows one running (an export
            -- whose billing lags the churn). A subscription started after it is a comeback.
            when is_churned_by_record then 'churned'
            when active_subscriptions > 0 then 'customer'
            when customer_subscriptions > 0 then 'churned'
            when opportunities_won > 0 then 'customer'
            when opportunities_open > 0 then 'open_pipeline'
            else 'prospect'
        end as lifecycle_stage,
        coalesce(first_subscription_started_at, first_won_at) as customer_since_at
    from recorded

),

churn as (

    select
        *,
        -- Churn is known from subscriptions or churn records; without them nobody is known
        -- to have churned or stayed.
        case when has_churn_records then lifecycle_stage = 'churned' end as is_churned,
        case
            when is_churned_by_record then last_churn_recorded_at
            when lifecycle_stage = 'churned' then last_subscription_ended_at
        end as churned_at
    from lifecycle

),

tenure as (

    select
        *,
        case
            when lifecycle_stage in ('customer', 'churned') and customer_since_at is not null
                then {{ full_months_between(
                    'customer_since_at',
                    'coalesce(churned_at, ' ~ as_of_date() ~ ')'
                ) }}
        end as tenure_months_raw,
        case
            when has_churn_records then coalesce(
                is_churned
                and churned_at <= {{ dbt.dateadd('day', 90, 'customer_since_at') }},
                false
            )
        end as is_churned_within_90_days
    from churn

),

measured as (

    select
        *,
        case when tenure_months_raw < 0 then 0 else tenure_months_raw end as tenure_months
    from tenure

),

rated as (

    select
        *,
        {{ safe_ratio('opportunities_won', 'opportunities_won + opportunities_lost') }}
            as win_rate_raw,
        -- Per month of tenure, a month begun counting as one.
        case
            when lifecycle_stage in ('customer', 'churned') and customer_since_at is not null
                then {{ safe_ratio(
                    'tickets_total',
                    'case when tenure_months < 1 then 1 else tenure_months end'
                ) }}
        end as tickets_per_month_raw
    from measured

),

final as (

    select
        cast(account_id as {{ dbt.type_string() }}) as account_id,
        {{ as_of_date() }} as as_of_date,
        cast(lifecycle_stage as {{ dbt.type_string() }}) as lifecycle_stage,
        cast(opportunities_won as {{ dbt.type_bigint() }}) as opportunities_won,
        cast(opportunities_lost as {{ dbt.type_bigint() }}) as opportunities_lost,
        cast(opportunities_open as {{ dbt.type_bigint() }}) as opportunities_open,
        cast(first_won_at as {{ dbt.type_timestamp() }}) as first_won_at,
        cast(current_mrr_usd as {{ type_double() }}) as current_mrr_usd,
        cast(lifetime_revenue_usd as {{ type_double() }}) as lifetime_revenue_usd,
        cast(tenure_months as {{ dbt.type_bigint() }}) as tenure_months,
        cast(is_churned as {{ dbt.type_boolean() }}) as is_churned,
        cast(churned_at as {{ dbt.type_timestamp() }}) as churned_at,
        cast(tickets_total as {{ dbt.type_bigint() }}) as tickets_total,
        cast(tickets_last_90_days as {{ dbt.type_bigint() }}) as tickets_last_90_days,
        cast(urgent_tickets as {{ dbt.type_bigint() }}) as urgent_tickets,
        cast(avg_csat as {{ type_double() }}) as avg_csat,
        cast(activities_last_30_days as {{ dbt.type_bigint() }}) as activities_last_30_days,
        cast(activities_last_90_days as {{ dbt.type_bigint() }}) as activities_last_90_days,
        cast(
            {{ dbt.datediff('last_funding_at', as_of_date(), 'day') }}
            as {{ dbt.type_bigint() }}
        ) as days_since_last_funding,
        cast(open_roles as {{ dbt.type_bigint() }}) as open_roles,
        cast(first_won_at as date) as first_won_date,
        cast(customer_since_at as {{ dbt.type_timestamp() }}) as customer_since_at,
        cast(current_mrr_usd * 12 as {{ type_double() }}) as current_arr_usd,
        cast(mrr_12_months_ago_usd as {{ type_double() }}) as mrr_12_months_ago_usd,
        cast(nrr_12m as {{ type_double() }}) as nrr_12m,
        cast(grr_12m as {{ type_double() }}) as grr_12m,
        cast(expansion_mrr_usd as {{ type_double() }}) as expansion_mrr_usd,
        cast(cumulative_mrr_usd as {{ type_double() }}) as cumulative_mrr_usd,
        cast(case when is_churned then tenure_months end as {{ dbt.type_bigint() }})
            as months_to_churn,
        cast(is_churned_within_90_days as {{ dbt.type_boolean() }})
            as is_churned_within_90_days,
        cast(win_rate_raw as {{ type_double() }}) as win_rate,
        cast(median_sales_cycle_days as {{ type_double() }}) as median_sales_cycle_days,
        cast(tickets_per_month_raw as {{ type_double() }}) as tickets_per_month,
        cast(
            {{ safe_ratio('1000.0 * tickets_total', 'cumulative_mrr_usd') }}
            as {{ type_double() }}
        ) as tickets_per_1k_mrr_usd,
        cast(
            {{ safe_ratio('urgent_tickets', 'tickets_total') }} as {{ type_double() }}
        ) as urgent_ticket_share,
        cast(median_resolution_hours as {{ type_double() }}) as median_resolution_hours,
        cast(csat_responses as {{ dbt.type_bigint() }}) as csat_responses,
        cast(invoices_issued as {{ dbt.type_bigint() }}) as invoices_issued,
        cast(invoices_failed as {{ dbt.type_bigint() }}) as invoices_failed,
        cast(payment_failure_rate as {{ type_double() }}) as payment_failure_rate,
        cast(case when is_churned then churn_reason end as {{ dbt.type_string() }})
            as churn_reason,
        cast(usage_active_days_last_30_days as {{ dbt.type_bigint() }})
            as usage_active_days_last_30_days,
        cast(usage_active_days_last_90_days as {{ dbt.type_bigint() }})
            as usage_active_days_last_90_days,
        cast(features_used_last_90_days as {{ dbt.type_bigint() }})
            as features_used_last_90_days,
        cast(usage_trend as {{ type_double() }}) as usage_trend,
        cast(last_usage_date as date) as last_usage_date,
        cast(nps_responses as {{ dbt.type_bigint() }}) as nps_responses,
        cast(avg_nps_score as {{ type_double() }}) as avg_nps_score,
        cast(net_promoter_score as {{ type_double() }}) as net_promoter_score
    from rated

)

select * from final
