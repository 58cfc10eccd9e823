{#- Bronze lines as typed columns, for the year(s) being built (`--vars '{year: Y}'`; all years
    without it). No row is filtered out: every staging row comes out once, with
    `reject_reason` (why silver will not take it) and `cast_warnings` (which descriptive values
    did not parse and became NULL). silver.flights takes the rows without a reject_reason;
    the typing itself is macros/typed_flights.sql, shared with silver.flights_rejected. -#}
{#- In the Airflow DAG, this model's `dbt build` also selects the staging sources, so their
    tests (every load_id has an audit row) run there rather than in a Cosmos task of their own
    (~1 s of dbt start-up each). -#}
{{ config(meta={'cosmos': {'operator_kwargs': {'select': [
    'stg_flights', 'source:staging.flights', 'source:staging.load_audit']}}}) }}
with

source as (
    select * from {{ source('staging', 'flights') }}
    -- The year is applied here, below the fences in the typed layers: a filter from outside
    -- is not pushed through them, and the partition of the year is all that has to be read.
    where {{ year_condition() }} and {{ month_lines_condition() }}
)

{{ typed_flights('source') }}
