{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='year',
        incremental_predicates=year_predicates(),
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['year'], 'type': 'brin'}],
        tags=['silver'],
    )
}}
{#- Every staging row silver.flights did not take, with the reason: nothing is dropped
    silently. Duplicated bad lines are all listed (each line number is something to fix). -#}
with

rejected as (
    select * from {{ ref('stg_flights') }}
    where {{ year_condition() }}
      and reject_reason is not null
),

final as (
    select
        year,
        load_id,
        line_no,
        reject_reason,
        replace(raw_fields, E'\x1f', ',') as raw_fields
    from rejected
)

select * from final
