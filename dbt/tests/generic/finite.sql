{#-
    Fails for every row where the column is NaN or infinite (NULL passes). The ingest
    quarantines amounts that would overflow in USD (non_finite_number); this is the guard
    that none is ever published.
-#}
{% test finite(model, column_name) %}

select {{ column_name }}
from {{ model }}
-- Every finite double lies within +-DBL_MAX; infinities do not, and NaN sorts above all
-- numbers (DuckDB, PostgreSQL), so no isfinite() is needed.
where not ({{ column_name }} between -1.7976931348623157e308 and 1.7976931348623157e308)

{% endtest %}
