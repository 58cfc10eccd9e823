{#- Fails on every row whose combination of the columns occurs more than once. A window count
    over a sort is used rather than GROUP BY ... HAVING: on a 7.2 M-row year the hash
    aggregate of millions of distinct keys spills to disk (6.6 s) where the sort does not
    (4.1 s, measured on silver.flights). -#}
{% test unique_combination(model, combination) %}
{%- set columns = combination | join(', ') %}
select {{ columns }}, occurrences
from (
    select {{ columns }}, count(*) over (partition by {{ columns }}) as occurrences
    from {{ model }}
) counted
where occurrences > 1
{% endtest %}
