{{ config(materialized='view', tags=['ml'],
          meta={'cosmos': {'operator_kwargs': {'select': [
              'daily_detector_flags', 'source:ml.detectors']}}}) }}
{#- Every detector's verdict on every scored airport-day, one row each: the detector_flags
    and detector_strengths maps of ml.dep_delay_anomalies unfolded and named by ml.detectors.
    The rows follow the registry (ml/detectors.py), so a new detector appears here, in the
    docs and on the dashboard without a change to this model. A view: a dashboard reads the
    few anomalous days by id and year, which reach ml's primary key and year index through
    the lateral unfolding, and nothing is copied that could go stale after a re-score. -#}
with

anomalies as (
    select * from {{ source('ml', 'dep_delay_anomalies') }}
),

detectors as (
    select * from {{ source('ml', 'detectors') }}
),

verdicts as (
    select
        anomalies.id,
        anomalies.origin,
        anomalies.fl_date,
        anomalies.year,
        flags.key as detector,
        flags.value::boolean as flagged,
        (anomalies.detector_strengths ->> flags.key)::double precision as strength
    from anomalies
    cross join lateral jsonb_each_text(anomalies.detector_flags) as flags
),

final as (
    select
        verdicts.id,
        verdicts.origin,
        verdicts.fl_date,
        verdicts.year,
        verdicts.detector,
        detectors.label,
        detectors.is_member,
        verdicts.flagged,
        verdicts.strength
    from verdicts
    -- a left join, so a key without its ml.detectors row fails the relationships test
    -- instead of disappearing
    left join detectors on detectors.name = verdicts.detector
)

select * from final
