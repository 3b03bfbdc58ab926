{#-
    Fails for every row where the column is NULL although the company has the source it is
    computed from on that row's as_of_date (int_sources_present.has_<source>). Without the
    source the column is NULL by design (an absent optional source is not zero).
-#}
{% test not_null_when_source_present(model, column_name, source) %}

select checked.{{ column_name }}
from {{ model }} as checked
inner join {{ ref('int_sources_present') }} as sources
    on checked.as_of_date = sources.as_of_date
where sources.has_{{ source }} and checked.{{ column_name }} is null

{% endtest %}
