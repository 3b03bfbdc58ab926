{#-
    Monthly MRR per account, from the first month it paid to the as-of month, with each
    month's movement against the month before. Subscriptions say when an account paid: a
    non-trial subscription counts in a past month when it was running at the month's end, and
    in the as-of month when it runs on as_of_date. Invoices say how much: a subscription's
    MRR in a month is the USD amount of its latest invoice issued by the month's end (void
    and draft invoices left out), else its current MRR. So the as-of month equals current
    MRR, a voided or late-paid invoice is no churn, and price changes show when billed.
-#}
with

subscriptions as (

    select * from {{ ref('stg_billing__subscriptions') }}

),

invoices as (

    select * from {{ ref('stg_billing__invoices') }}
    where status not in ('void', 'draft') and subscription_id is not null

),

integers as (

    select n from {{ integer_series(1000) }} as integers

),

as_of_month as (

    select cast({{ dbt.date_trunc('month', as_of_date()) }} as date) as mrr_month

),

subscription_months as (

    select
        subscriptions.subscription_id,
        subscriptions.account_id,
        subscriptions.mrr_usd as current_mrr_usd,
        subscriptions.is_active,
        subscriptions.started_at,
        subscriptions.ended_at,
        cast({{ dbt.dateadd(
            'month', 'integers.n', dbt.date_trunc('month', 'subscriptions.started_at')
        ) }} as date) as mrr_month
    from subscriptions
    cross join as_of_month
    inner join integers
        on integers.n <= {{ dbt.datediff(
            'subscriptions.started_at', 'as_of_month.mrr_month', 'month'
        ) }}
    where subscriptions.status <> 'trialing'

),

running_months as (

    select
        subscription_months.*,
        cast(
            {{ dbt.dateadd('month', 1, 'subscription_months.mrr_month') }}
            as {{ dbt.type_timestamp() }}
        ) as next_month_start_at
    from subscription_months
    cross join as_of_month
    where
        (subscription_months.mrr_month = as_of_month.mrr_month and subscription_months.is_active)
        or (
            subscription_months.mrr_month < as_of_month.mrr_month
            and subscription_months.started_at < cast(
                {{ dbt.dateadd('month', 1, 'subscription_months.mrr_month') }}
                as {{ dbt.type_timestamp() }}
            )
            and (
                subscription_months.ended_at is null
                or subscription_months.ended_at >= cast(
                    {{ dbt.dateadd('month', 1, 'subscription_months.mrr_month') }}
                    as {{ dbt.type_timestamp() }}
                )
            )
        )

),

priced as (

    select
        running_months.account_id,
        running_months.subscription_id,
        running_months.mrr_month,
        running_months.current_mrr_usd,
        invoices.amount_usd as invoiced_usd,
        row_number() over (
            partition by running_months.subscription_id, running_months.mrr_month
            order by invoices.issued_at desc, invoices.invoice_id desc
        ) as invoice_rank
    from running_months
    cross join as_of_month
    left join invoices
        on
            running_months.subscription_id = invoices.subscription_id
            and invoices.issued_at < running_months.next_month_start_at
            -- The as-of month is priced by the subscription itself (current MRR).
            and running_months.mrr_month < as_of_month.mrr_month

),

billed as (

    select
        account_id,
        mrr_month,
        coalesce(invoiced_usd, current_mrr_usd) as mrr_usd
    from priced
    where invoice_rank = 1

),

first_months as (

    select
        account_id,
        min(mrr_month) as first_mrr_month
    from billed
    where mrr_usd > 0
    group by account_id

),

spine as (

    select
        first_months.account_id,
        cast(
            {{ dbt.dateadd('month', 'integers.n', 'first_months.first_mrr_month') }} as date
        ) as mrr_month
    from first_months
    cross join as_of_month
    inner join integers
        on integers.n <= {{ dbt.datediff(
            'first_months.first_mrr_month', 'as_of_month.mrr_month', 'month'
        ) }}

),

monthly as (

    select
        spine.account_id,
        spine.mrr_month,
        -- Rounded to the cent so that fx noise below a cent is no movement.
        {{ exact_sum("billed.mrr_usd", decimal_places=2) }} as mrr_usd
    from spine
    left join billed
        on
            spine.account_id = billed.account_id
            and spine.mrr_month = billed.mrr_month
    group by spine.account_id, spine.mrr_month

),

compared as (

    select
        account_id,
        mrr_month,
        mrr_usd,
        coalesce(
            lag(mrr_usd) over (partition by account_id order by mrr_month), 0
        ) as previous_mrr_usd,
        count(case when mrr_usd > 0 then 1 end) over (
            partition by account_id
            order by mrr_month
            rows between unbounded preceding and 1 preceding
        ) as earlier_billed_months
    from monthly

),

classified as (

    select
        *,
        mrr_usd - previous_mrr_usd as mrr_change_usd,
        case
            when previous_mrr_usd = 0 and mrr_usd > 0 and earlier_billed_months = 0 then 'new'
            when previous_mrr_usd = 0 and mrr_usd > 0 then 'reactivation'
            when previous_mrr_usd > 0 and mrr_usd = 0 then 'churn'
            when previous_mrr_usd > 0 and mrr_usd > previous_mrr_usd then 'expansion'
            when previous_mrr_usd > 0 and mrr_usd < previous_mrr_usd then 'contraction'
            else 'unchanged'
        end as mrr_movement
    from compared

),

final as (

    select
        classified.account_id,
        classified.mrr_month,
        classified.mrr_usd,
        classified.previous_mrr_usd,
        classified.mrr_change_usd,
        classified.mrr_movement,
        classified.mrr_month = as_of_month.mrr_month as is_as_of_month
    from classified
    cross join as_of_month

)

select * from final
