{#- Fails on every integer `key` value that occurs more than once within its `partition_by`
    columns (e.g. line_no per year), one row per repeated value with its occurrences.

    Why not a GROUP BY or a window count over every key: run as dbt runs tests (default planner
    settings), either hashes or sorts all 7.2 M keys of a year on one core, 4-7 s (measured on
    silver.flights). Here the keys are first grouped in blocks of 64 consecutive values (key >> 6)
    and each block ORs one bit per key (key & 63): when a block's bit count is below its row
    count, two of its rows share a key. That is one hash aggregate over ~n/64 groups, ~1.9 s on
    the same year. Only blocks that fail (normally none: the one-time filter then skips the
    second scan) are searched for the exact repeated values. `>>` and `&` floor negative keys
    into their blocks correctly too. -#}
{% test unique_integer_key(model, key, partition_by=[]) %}
{%- set partition = partition_by | join(', ') ~ (', ' if partition_by else '') %}
with failing_blocks as (
    select {{ partition }}{{ key }} >> 6 as key_block
    from {{ model }}
    group by {{ partition }}{{ key }} >> 6
    having count(*) > bit_count(bit_or(1::bigint << ({{ key }} & 63)::integer)::bit(64))
)

select {{ partition }}{{ key }}, count(*) as occurrences
from {{ model }}
where exists (select from failing_blocks)
  and ({{ partition }}{{ key }} >> 6) in (select * from failing_blocks)
group by {{ partition }}{{ key }}
having count(*) > 1
{% endtest %}
