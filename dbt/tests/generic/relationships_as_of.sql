{#-
    dbt's relationships test on the rows of the build's as-of date only: a table that keeps
    every date built (fct_account_metrics) may name, in its other dates' rows, accounts that
    the parent (which holds the build's date) no longer or not yet has. Fails for every child
    value of as_of_date() with no parent row.
-#}
{% test relationships_as_of(model, column_name, to, field, date_column='as_of_date') %}

with

children as (

    select {{ column_name }} as child_value
    from {{ model }}
    where {{ date_column }} = {{ as_of_date() }} and {{ column_name }} is not null

),

parents as (

    select {{ field }} as parent_value
    from {{ to }}

)

select children.child_value
from children
left join parents
    on children.child_value = parents.parent_value
where parents.parent_value is null

{% endtest %}
