{#-
    Segment bands shared by dim_accounts and the cohort mart, so each band is defined once.
-#}

{#- Employee-count band. -#}
{% macro size_band(employee_count) -%}
    case
        when {{ employee_count }} is null then 'unknown'
        when {{ employee_count }} < 20 then '1-19'
        when {{ employee_count }} < 100 then '20-99'
        when {{ employee_count }} < 500 then '100-499'
        when {{ employee_count }} < 1000 then '500-999'
        else '1000+'
    end
{%- endmacro %}

{#- Annual-revenue band in USD. -#}
{% macro revenue_band(annual_revenue_usd) -%}
    case
        when {{ annual_revenue_usd }} is null then 'unknown'
        when {{ annual_revenue_usd }} < 1000000 then '<1m'
        when {{ annual_revenue_usd }} < 10000000 then '1m-10m'
        when {{ annual_revenue_usd }} < 50000000 then '10m-50m'
        when {{ annual_revenue_usd }} < 250000000 then '50m-250m'
        else '250m+'
    end
{%- endmacro %}

{#- World region of an ISO 3166 alpha-2 country code (upper case). -#}
{% macro country_region(country) -%}
    {%- set regions = {
        'north_america': ['US', 'CA'],
        'latin_america': ['MX', 'BR', 'AR', 'CL', 'CO', 'PE', 'UY', 'CR', 'PA', 'EC'],
        'europe': [
            'GB', 'IE', 'DE', 'NL', 'BE', 'LU', 'FR', 'ES', 'PT', 'IT', 'CH', 'AT', 'SE', 'NO',
            'DK', 'FI', 'IS', 'PL', 'CZ', 'SK', 'HU', 'RO', 'BG', 'GR', 'HR', 'SI', 'EE', 'LV',
            'LT', 'UA'
        ],
        'asia_pacific': [
            'AU', 'NZ', 'JP', 'KR', 'CN', 'HK', 'TW', 'SG', 'MY', 'TH', 'VN', 'PH', 'ID', 'IN'
        ],
        'middle_east_africa': ['AE', 'SA', 'IL', 'TR', 'EG', 'ZA', 'NG', 'KE', 'MA', 'QA'],
    } -%}
    case
        when {{ country }} is null then 'unknown'
        {%- for region, countries in regions.items() %}
        when {{ country }} in ('{{ countries | join("', '") }}') then '{{ region }}'
        {%- endfor %}
        else 'other'
    end
{%- endmacro %}
