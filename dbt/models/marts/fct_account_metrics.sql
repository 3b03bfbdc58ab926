with

accounts as (

    select * from {{ ref('dim_accounts') }}

),

opportunities as (

    select * from {{ ref('int_opportunities_aggregated_to_accounts') }}

),

subscriptions as (

    select * from {{ ref('int_subscriptions_aggregated_to_accounts') }}

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

joined as (

    select
        accounts.account_id,
        accounts.last_funding_at,
        accounts.open_roles,
        coalesce(opportunities.opportunities_won, 0) as opportunities_won,
        coalesce(opportunities.opportunities_lost, 0) as opportunities_lost,
        coalesce(opportunities.opportunities_open, 0) as opportunities_open,
        opportunities.first_won_at,
        coalesce(subscriptions.active_subscriptions, 0) as active_subscriptions,
        coalesce(subscriptions.customer_subscriptions, 0) as customer_subscriptions,
        coalesce(subscriptions.current_mrr_usd, 0) as current_mrr_usd,
        subscriptions.first_subscription_started_at,
        subscriptions.last_subscription_ended_at,
        coalesce(invoices.lifetime_revenue_usd, 0) as lifetime_revenue_usd,
        coalesce(tickets.tickets_total, 0) as tickets_total,
        coalesce(tickets.tickets_last_90_days, 0) as tickets_last_90_days,
        coalesce(tickets.urgent_tickets, 0) as urgent_tickets,
        tickets.avg_csat,
        coalesce(activities.activities_last_30_days, 0) as activities_last_30_days,
        coalesce(activities.activities_last_90_days, 0) as activities_last_90_days
    from accounts
    left join opportunities
        on accounts.account_id = opportunities.account_id
    left join subscriptions
        on accounts.account_id = subscriptions.account_id
    left join invoices
        on accounts.account_id = invoices.account_id
    left join tickets
        on accounts.account_id = tickets.account_id
    left join activities
        on accounts.account_id = activities.account_id

),

lifecycle as (

    -- Billing is the truth about being a customer: a running subscription makes one, and a
    -- past (non-trial) subscription with none running now makes a churned one. A won deal
    -- with no subscription at all yet counts as a customer (billing lags the CRM).
    select
        *,
        case
            when active_subscriptions > 0 then 'customer'
            when customer_subscriptions > 0 then 'churned'
            when opportunities_won > 0 then 'customer'
            when opportunities_open > 0 then 'open_pipeline'
            else 'prospect'
        end as lifecycle_stage,
        coalesce(first_subscription_started_at, first_won_at) as customer_since_at
    from joined

),

churn as (

    select
        *,
        lifecycle_stage = 'churned' as is_churned,
        case
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
        end as tenure_months_raw
    from churn

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
        cast(
            case when tenure_months_raw < 0 then 0 else tenure_months_raw end
            as {{ dbt.type_bigint() }}
        ) as tenure_months,
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
        cast(open_roles as {{ dbt.type_bigint() }}) as open_roles
    from tenure

)

select * from final
