with

subscriptions as (

    select * from {{ ref('stg_billing__subscriptions') }}

),

aggregated as (

    select
        account_id,
        count(case when is_active then 1 end) as active_subscriptions,
        coalesce({{ exact_sum("case when is_active then mrr_usd end") }}, 0) as current_mrr_usd,
        -- A trial is not a customer relationship yet; any other subscription is.
        count(case when status <> 'trialing' then 1 end) as customer_subscriptions,
        min(case when status <> 'trialing' then started_at end) as first_subscription_started_at,
        max(started_at) as last_subscription_started_at,
        max(
            case
                when status <> 'trialing' and not is_active
                    then coalesce(ended_at, updated_at)
            end
        ) as last_subscription_ended_at
    from subscriptions
    group by account_id

)

select * from aggregated
