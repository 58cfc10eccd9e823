-- The ml schema: owned by ml/ (nothing else writes here). Idempotent: safe to run before
-- every scoring run; columns added later use `add column if not exists` so old warehouses
-- catch up without a migration tool.
create schema if not exists ml;

create table if not exists ml.model_runs (
    run_id        uuid        primary key,
    year          integer     not null,
    model_version text        not null,
    params        jsonb       not null,
    airports      integer,
    airport_days  integer,
    anomalies     integer,
    failures      jsonb       not null default '[]'::jsonb,
    status        text        not null default 'succeeded',
    detector_seconds jsonb,
    started_at    timestamptz not null,
    finished_at   timestamptz,
    seconds       double precision
);

create table if not exists ml.dep_delay_anomalies (
    id                     text        primary key,
    origin                 text        not null,
    fl_date                date        not null,
    year                   integer     not null,
    -- observed (copied from gold.agg_dep_delay_by_date so each row explains itself)
    flights                integer,
    scheduled_flights      integer,
    cancelled_flights      integer,
    mean_dep_delay         double precision,
    cancel_rate            double precision,
    -- expectations: built from other days only (leave-one-out, earlier anomalies left out)
    expected_dep_delay     double precision,
    dep_delay_band_low     double precision,
    dep_delay_band_high    double precision,
    expected_cancel_rate   double precision,
    cancel_rate_band_high  double precision,
    -- scores: delay_score is a robust z (late > 0); cancel_score is -log10 of the tail
    -- probability of at least this many cancellations given the baseline rate and volume
    delay_score            double precision,
    cancel_score           double precision,
    iforest_score          double precision,
    arima_score            double precision,
    -- share of flights 15+ min late: its baseline and tail score (volume-aware, like cancels)
    expected_late_share    double precision,
    late_score             double precision,
    -- flights that left: the weekday norm, the lowest count still ordinary, and a robust z
    -- of the drop on the log scale (> 0 = fewer flights than expected)
    expected_flights       double precision,
    flights_band_low       double precision,
    volume_score           double precision,
    -- every registered detector's verdict, keyed by its name in ml.detectors: its flag
    -- (name -> true/false) and, for ensemble members, its strength (score over its own
    -- threshold; null where the day was not judged). Maps rather than a column per detector,
    -- so a new detector needs no DDL (docs/ml.md, "How to add a detector").
    detector_flags         jsonb       not null default '{}'::jsonb,
    detector_strengths     jsonb       not null default '{}'::jsonb,
    -- the ensemble: members' strengths (score / threshold) combined by ensemble_rule;
    -- is_anomaly = anomaly_score >= 1
    anomaly_score          double precision,
    is_anomaly             boolean     not null default false,
    anomaly_kind           text        check (anomaly_kind in ('delay', 'cancellation', 'both')),
    severity               text        not null default 'none'
                                       check (severity in ('none', 'low', 'medium', 'high')),
    history_status         text        not null
                                       check (history_status in
                                              ('scored', 'scored_in_year', 'insufficient_history')),
    ensemble_rule          text,
    model_version          text        not null,
    run_id                 uuid        not null,
    scored_at              timestamptz not null,
    constraint id_is_origin_and_date check (id = origin || to_char(fl_date, 'YYYYMMDD'))
);

-- The detector registry (ml/detectors.py DETECTORS) as the warehouse sees it, upserted by
-- every scoring run: what the keys of detector_flags / detector_strengths mean.
create table if not exists ml.detectors (
    name           text        primary key,
    label          text        not null,
    description    text        not null,
    is_member      boolean     not null,
    evidence_group text,
    needs          jsonb       not null default '[]'::jsonb,
    params         jsonb       not null default '{}'::jsonb,
    is_registered  boolean     not null default true,
    model_version  text        not null,
    run_id         uuid        not null,
    updated_at     timestamptz not null
);

create index if not exists dep_delay_anomalies_year_idx on ml.dep_delay_anomalies (year);
create index if not exists dep_delay_anomalies_origin_date_idx
    on ml.dep_delay_anomalies (origin, fl_date);

-- Columns and values added after the table's first release (old warehouses catch up here).
alter table ml.dep_delay_anomalies add column if not exists expected_flights double precision;
alter table ml.dep_delay_anomalies add column if not exists flights_band_low double precision;
alter table ml.dep_delay_anomalies add column if not exists volume_score double precision;
-- Warehouses made before the maps keep their flag_<detector> columns: the upsert writes
-- every column of the table that the scorer has, so they stay current, and nothing reads them.
alter table ml.dep_delay_anomalies
    add column if not exists detector_flags jsonb not null default '{}'::jsonb;
alter table ml.dep_delay_anomalies
    add column if not exists detector_strengths jsonb not null default '{}'::jsonb;
alter table ml.dep_delay_anomalies add column if not exists anomaly_score double precision;
do $$
begin
    -- 'scored_in_year' (a first year, judged on its own days) joined the allowed statuses
    if not exists (
        select 1 from pg_constraint
        where conrelid = 'ml.dep_delay_anomalies'::regclass
          and conname = 'dep_delay_anomalies_history_status_check'
          and pg_get_constraintdef(oid) like '%scored_in_year%'
    ) then
        alter table ml.dep_delay_anomalies
            drop constraint if exists dep_delay_anomalies_history_status_check;
        alter table ml.dep_delay_anomalies
            add constraint dep_delay_anomalies_history_status_check check (
                history_status in ('scored', 'scored_in_year', 'insufficient_history'));
    end if;
end
$$;

-- month: a run that scored one month of its year (python -m ml score --year Y --month M);
-- null for a whole year.
alter table ml.model_runs add column if not exists month integer;
