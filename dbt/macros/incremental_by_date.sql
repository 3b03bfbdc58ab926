{#-
    Pre-hook of a model incremental by as_of_date whose build may have no rows for its date
    (account_fit_score_changes on a day nothing changed): delete+insert deletes only the dates
    the new rows hold, so a rerun that finds nothing would leave the old rows. Deleting the
    date first, in the build's transaction, replaces them in every case.
-#}
{% macro delete_as_of_date_rows() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where as_of_date = {{ as_of_date() }}
    {%- endif -%}
{%- endmacro %}
