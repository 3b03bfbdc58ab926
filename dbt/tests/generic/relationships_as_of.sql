{#-
    dbt's relationships test on the rows of the build's as-of date only: a table that keeps
    every date built (fct_account_metrics) may name, in its other dates' rows, accounts that
    did not exist on the build's date. Parents are taken from the same date when the parent
    keeps dates too (parent_date_column). Fails for every child value of as_of_date() with no
    parent row.
-#}
{% test relationships_as_of(model, column_name, to, field, date_column='as_of_date', parent_date_column=none) %}

with

children as (

    select {{ column_name }} as child_value
    from {{ model }}
    where {{ date_column }} = {{ as_of_date() }} and {{ column_name }} is not null

),

parents as (

    select {{ field }} as parent_value
    from {{ to }}
    {% if parent_date_column %}where {{ parent_date_column }} = {{ as_of_date() }}{% endif %}

)

select children.child_value
from children
left join parents
    on children.child_value = parents.parent_value
where parents.parent_value is null

{% endtest %}
