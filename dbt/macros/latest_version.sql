{#-
    The current version of every key from the raw rows of several exports (a snapshot then
    deltas), as the contract's upsert rule says:

    - the row with the latest updated_at wins (a NULL updated_at loses to any timestamp);
      ties go to the later export date, then to the later line of the file;
    - a row with is_deleted = true removes the key from its export date on: the key is gone
      when the winning row is a deletion, or when a deletion arrived in a later export than
      the winning row (a deletion that carries a stale updated_at still deletes). A key sent
      again in an export after its deletion is back.

    An entity without updated_at (has_updated_at=false: events sent again) takes the later
    export, then the later line.

    `relation` is a CTE or relation holding raw columns incl. _export_date and _line_number,
    already limited to exports dated <= as_of_date. Returns its columns plus version_rank.
-#}
{% macro latest_version(relation, key_columns, has_is_deleted=true, has_updated_at=true) -%}
    {%- set keys = key_columns if key_columns is not string else [key_columns] -%}
    select *
    from (
        select
            {{ relation }}.*,
            row_number() over (
                partition by {{ keys | join(', ') }}
                order by
                    {%- if has_updated_at %} updated_at desc nulls last,{% endif %}
                    _export_date desc, _line_number desc
            ) as version_rank
            {%- if has_is_deleted %},
            max(case when is_deleted then _export_date end) over (
                partition by {{ keys | join(', ') }}
            ) as last_deleted_export_date
            {%- endif %}
        from {{ relation }}
    ) as versions
    where
        version_rank = 1
        {%- if has_is_deleted %}
        and not coalesce(is_deleted, false)
        and (last_deleted_export_date is null or last_deleted_export_date <= _export_date)
        {%- endif %}
{%- endmacro %}
