{#-
    Money in USD: the amount itself for USD, else times the fx rate row joined for it
    (see stg_reference__fx_rates and fx_rate_join()).
-#}
{% macro to_usd(amount, currency, fx_rates_alias='fx_rates') -%}
    case
        when {{ currency }} = 'USD' then {{ amount }}
        else {{ amount }} * {{ fx_rates_alias }}.usd_per_unit
    end
{%- endmacro %}

{#-
    Join condition picking the fx rate of `currency` in force on the date of `at`: the latest
    rate dated on or before it; a date before a currency's first rate uses that first rate.
-#}
{% macro fx_rate_join(currency, at, fx_rates_alias='fx_rates') -%}
    {{ currency }} = {{ fx_rates_alias }}.currency
    and (
        {{ fx_rates_alias }}.is_first_rate
        or cast({{ at }} as date) >= {{ fx_rates_alias }}.valid_from_date
    )
    and (
        {{ fx_rates_alias }}.valid_to_date is null
        or cast({{ at }} as date) < {{ fx_rates_alias }}.valid_to_date
    )
{%- endmacro %}
