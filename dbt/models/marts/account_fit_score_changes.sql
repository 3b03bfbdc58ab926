{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ delete_as_of_date_rows() }}",
    )
}}
{#-
    The accounts whose score changed in a way sales ops acts on, per scored as_of_date:
    compared with the previous scored date in the score history (the newest date before
    as_of_date, never a later one, so a backfill of an older date compares with its own
    predecessor). Reported: new accounts (not scored on the previous date; on the first date
    scored, every account: the CRM's first load), removed accounts (scored on the previous
    date, not on this one), and accounts whose anti-ICP flag, tier or route changed or whose
    fit score moved by more than var change_min_score_change points.

    A build replaces the rows of its as_of_date (the pre-hook deletes them, also when no
    account changed), and no other date's rows.
-#}
with

history as (

    select * from {{ source('scoring', 'account_fit_score_history') }}

),

previous_date as (

    select max(as_of_date) as as_of_date
    from history
    where as_of_date < {{ as_of_date() }}

),

current_scores as (

    select * from history
    where as_of_date = {{ as_of_date() }}

),

previous_scores as (

    select history.*
    from history
    inner join previous_date
        on history.as_of_date = previous_date.as_of_date

),

paired as (

    select
        coalesce(current_scores.account_id, previous_scores.account_id) as account_id,
        previous_scores.as_of_date as previous_as_of_date,
        previous_scores.fit_score as previous_fit_score,
        current_scores.fit_score,
        previous_scores.fit_tier as previous_fit_tier,
        current_scores.fit_tier,
        previous_scores.route as previous_route,
        current_scores.route,
        previous_scores.is_anti_icp as previous_is_anti_icp,
        current_scores.is_anti_icp,
        previous_scores.anti_icp_reasons as previous_anti_icp_reasons,
        current_scores.anti_icp_reasons,
        current_scores.score_version,
        current_scores.scored_at,
        previous_scores.account_id is null as is_new_account,
        current_scores.account_id is null as is_removed_account
    from current_scores
    full outer join previous_scores
        on current_scores.account_id = previous_scores.account_id

),

compared as (

    select
        *,
        -- False for a new or removed account: there is nothing to compare with.
        coalesce(is_anti_icp <> previous_is_anti_icp, false) as is_anti_icp_changed,
        coalesce(fit_tier <> previous_fit_tier, false) as is_tier_changed,
        coalesce(route <> previous_route, false) as is_route_changed,
        fit_score - previous_fit_score as fit_score_change,
        coalesce(
            abs(fit_score - previous_fit_score) > {{ var('change_min_score_change') }}, false
        ) as is_score_moved
    from paired

),

changed as (

    select
        *,
        case
            when is_new_account then 'new'
            when is_removed_account then 'removed'
            when is_anti_icp_changed and is_anti_icp then 'anti_icp_flagged'
            when is_anti_icp_changed then 'anti_icp_cleared'
            when is_tier_changed and {{ tier_rank('fit_tier') }}
                > {{ tier_rank('previous_fit_tier') }} then 'tier_upgraded'
            when is_tier_changed then 'tier_downgraded'
            when is_route_changed then 'route_changed'
            when fit_score_change > 0 then 'score_increased'
            else 'score_decreased'
        end as change_kind
    from compared
    where
        (
            is_new_account
            or is_removed_account
            or is_anti_icp_changed
            or is_tier_changed
            or is_route_changed
            or is_score_moved
        )
        -- A date the scoring has not written reports nothing, not every account as removed.
        and exists (select 1 from current_scores)

),

-- Factors only for the changed accounts: unnesting every account's factors would cost as
-- much as the scores themselves.
current_factors as (

    {{ factor_point_rows('current_scores', 'changed') }}

),

previous_factors as (

    {{ factor_point_rows('previous_scores', 'changed') }}

),

factor_moves as (

    select
        coalesce(current_factors.account_id, previous_factors.account_id) as account_id,
        coalesce(current_factors.factor, previous_factors.factor) as factor,
        previous_factors.points as previous_points,
        current_factors.points,
        coalesce(current_factors.points, 0)
        - coalesce(previous_factors.points, 0) as points_change
    from current_factors
    full outer join previous_factors
        on
            current_factors.account_id = previous_factors.account_id
            and current_factors.factor = previous_factors.factor

),

ranked_factor_moves as (

    select
        *,
        row_number() over (
            partition by account_id order by abs(points_change) desc, factor
        ) as move_rank
    from factor_moves
    where points_change <> 0

),

changed_factors as (

    select
        account_id,
        {{ changed_factor_list() }} as changed_factors
    from ranked_factor_moves
    where move_rank <= {{ var('change_factor_count') }}
    group by account_id

),

final as (

    select
        {{ as_of_date() }} as as_of_date,
        cast(changed.account_id as {{ dbt.type_string() }}) as account_id,
        cast(changed.change_kind as {{ dbt.type_string() }}) as change_kind,
        changed.previous_as_of_date,
        cast(changed.previous_fit_score as decimal(7, 2)) as previous_fit_score,
        cast(changed.fit_score as decimal(7, 2)) as fit_score,
        cast(changed.fit_score_change as decimal(7, 2)) as fit_score_change,
        changed.previous_fit_tier,
        changed.fit_tier,
        changed.previous_route,
        changed.route,
        changed.previous_is_anti_icp,
        changed.is_anti_icp,
        changed.previous_anti_icp_reasons,
        changed.anti_icp_reasons,
        {{ list_except('changed.anti_icp_reasons', 'changed.previous_anti_icp_reasons') }}
            as anti_icp_reasons_added,
        {{ list_except('changed.previous_anti_icp_reasons', 'changed.anti_icp_reasons') }}
            as anti_icp_reasons_removed,
        changed.is_new_account,
        changed.is_removed_account,
        changed.is_anti_icp_changed,
        changed.is_tier_changed,
        changed.is_route_changed,
        changed.is_score_moved,
        {{ changed_factors_or_empty('changed_factors.changed_factors') }} as changed_factors,
        changed.score_version,
        changed.scored_at
    from changed
    left join changed_factors
        on changed.account_id = changed_factors.account_id

)

select * from final
