{#- Fails (one row per value) when the column holds more than one distinct value. -#}
{% test single_value(model, column_name) %}

with

distinct_values as (

    select distinct {{ column_name }} as value
    from {{ model }}

)

select value
from distinct_values
where (select count(*) from distinct_values) > 1

{% endtest %}
