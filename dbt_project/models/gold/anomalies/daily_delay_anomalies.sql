{{ config(materialized='view', tags=['ml'],
          meta={'cosmos': {'operator_kwargs': {'select': [
              'daily_delay_anomalies', 'source:ml.dep_delay_anomalies', 'source:ml.model_runs']}}}) }}
{#- Gold's daily delays with the anomaly verdicts beside them, for dashboards: every gold row
    appears once, scored or not yet scored (left join), so a chart of the series never has
    holes where the scorer has not run. In the Airflow DAG, this model's `dbt build` also
    selects the ml sources, so their tests (ids in gold, run ids in ml.model_runs) run there
    rather than in Cosmos tasks of their own (~1 s of dbt start-up each). -#}
with

daily as (
    select * from {{ ref('agg_dep_delay_by_date') }}
),

anomalies as (
    select * from {{ source('ml', 'dep_delay_anomalies') }}
),

airports as (
    select * from {{ ref('airports') }}
),

joined as (
    select
        daily.id,
        daily.origin,
        airports.name as airport_name,
        airports.city,
        airports.state,
        airports.latitude,
        airports.longitude,
        daily.fl_date,
        daily.year,
        daily.flights,
        daily.scheduled_flights,
        daily.cancelled_flights,
        daily.mean_dep_delay,
        daily.cancel_rate,
        daily.share_delayed_15,
        anomalies.expected_dep_delay,
        anomalies.dep_delay_band_low,
        anomalies.dep_delay_band_high,
        anomalies.expected_cancel_rate,
        anomalies.cancel_rate_band_high,
        anomalies.delay_score,
        anomalies.cancel_score,
        anomalies.late_score,
        anomalies.expected_flights,
        anomalies.flights_band_low,
        anomalies.volume_score,
        anomalies.anomaly_score,
        coalesce(anomalies.is_anomaly, false) as is_anomaly,
        anomalies.anomaly_kind,
        coalesce(anomalies.severity, 'none') as severity,
        coalesce(anomalies.history_status, 'not_scored') as history_status,
        anomalies.model_version,
        anomalies.run_id,
        anomalies.scored_at
    from daily
    -- the id fixes the year; joining on the year too lets a dashboard's year filter reach
    -- ml's year index instead of scanning every year's verdicts (690 ms -> see docs/superset.md)
    left join anomalies on anomalies.id = daily.id and anomalies.year = daily.year
    left join airports on airports.iata = daily.origin
)

select * from joined
