{#-
    The current state: the accounts of the newest as_of_date built into dim_accounts_history.
    A backfill of an older date adds that date's history rows and leaves this table as it was.
-#}
with

history as (

    select * from {{ ref('dim_accounts_history') }}

),

newest as (

    select max(as_of_date) as as_of_date from history

),

final as (

    select history.*
    from history
    inner join newest
        on history.as_of_date = newest.as_of_date

)

select * from final
