{{ config(tags=['reconciliation']) }}
-- mean_dep_delay x flights gives back the day's total delay; the tolerance is the rounding
-- of one float division and one multiplication (a few ulps), nothing more.
select id, flights, mean_dep_delay, total_dep_delay
from {{ ref('agg_dep_delay_by_date') }}
where {{ year_condition() }} and {{ month_dates_condition() }}
  and flights > 0
  and abs(mean_dep_delay * flights - total_dep_delay) > 1e-12 * greatest(abs(total_dep_delay), 1)
