{#-
    Churn recorded outside the subscriptions: churn events and an account's own churned_at,
    as of as_of_date. The latest record per account, with its reason.
-#}
with

events as (

    select
        account_id,
        churned_at,
        reason
    from {{ ref('stg_billing__churn_events') }}

),

account_records as (

    select account_id, churned_at, cast(null as {{ dbt.type_string() }}) as reason
    from {{ ref('stg_crm__accounts') }}
    where churned_at is not null

),

records as (

    select * from events
    union all
    select * from account_records

),

ranked as (

    select
        account_id,
        churned_at,
        reason,
        row_number() over (
            partition by account_id order by churned_at desc, reason asc nulls last
        ) as recency_rank
    from records

),

final as (

    select
        account_id,
        churned_at as last_churn_recorded_at,
        reason as churn_reason
    from ranked
    where recency_rank = 1

)

select * from final
