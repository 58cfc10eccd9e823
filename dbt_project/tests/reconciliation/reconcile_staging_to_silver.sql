{{ config(tags=['reconciliation']) }}
-- Nothing lost silently: per year, every staging row is either in silver.flights, a removed
-- exact duplicate of a silver row, or in silver.flights_rejected. Returns the years that do
-- not add up.
with

staged as (
    select year, count(*) as staging_rows
    from {{ source('staging', 'flights') }}
    where {{ year_condition() }} and {{ month_lines_condition() }}
    group by year
),

silver as (
    select year, count(*) as silver_rows, sum(duplicates_removed) as duplicates_removed
    from {{ ref('flights') }}
    where {{ year_condition() }} and {{ month_lines_condition() }}
    group by year
),

rejected as (
    select year, count(*) as rejected_rows
    from {{ ref('flights_rejected') }}
    where {{ year_condition() }} and {{ month_lines_condition() }}
    group by year
)

select
    staged.year,
    staged.staging_rows,
    coalesce(silver.silver_rows, 0) as silver_rows,
    coalesce(silver.duplicates_removed, 0) as duplicates_removed,
    coalesce(rejected.rejected_rows, 0) as rejected_rows
from staged
left join silver using (year)
left join rejected using (year)
where staged.staging_rows
    <> coalesce(silver.silver_rows, 0) + coalesce(silver.duplicates_removed, 0)
       + coalesce(rejected.rejected_rows, 0)
