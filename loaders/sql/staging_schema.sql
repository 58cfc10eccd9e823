-- The staging schema: owned by loaders/ (nothing else writes here). Idempotent.
-- staging.flights keeps every bronze field as raw text, exactly as it was in the file, so that
-- no value is lost or guessed at load time; dbt does the typed casts and the reject policy.
-- It is list-partitioned by year so a reload swaps one year's partition atomically.
create schema if not exists staging;

create table if not exists staging.load_audit (
    load_id       uuid        primary key,
    year          integer     not null,
    source_uri    text        not null,
    bytes         bigint,
    lines_read    bigint,
    rows_loaded   bigint,
    rows_rejected bigint,
    status        text        not null check (status in ('running', 'succeeded', 'failed')),
    error         text,
    started_at    timestamptz not null default now(),
    finished_at   timestamptz,
    constraint lines_add_up check (
        status <> 'succeeded' or lines_read = rows_loaded + rows_rejected
    )
);

create table if not exists staging.flights (
    year                 integer not null,
    load_id              uuid    not null,
    line_no              bigint  not null,
    fl_date              text,
    op_carrier           text,
    op_carrier_fl_num    text,
    origin               text,
    dest                 text,
    crs_dep_time         text,
    dep_time             text,
    dep_delay            text,
    taxi_out             text,
    wheels_off           text,
    wheels_on            text,
    taxi_in              text,
    crs_arr_time         text,
    arr_time             text,
    arr_delay            text,
    cancelled            text,
    cancellation_code    text,
    diverted             text,
    crs_elapsed_time     text,
    actual_elapsed_time  text,
    air_time             text,
    distance             text,
    carrier_delay        text,
    weather_delay        text,
    nas_delay            text,
    security_delay       text,
    late_aircraft_delay  text,
    unnamed_27           text
) partition by list (year);

create table if not exists staging.flights_rejected (
    year      integer not null,
    load_id   uuid    not null,
    line_no   bigint  not null,
    raw_line  text    not null,
    reason    text    not null
) partition by list (year);

-- Columns added after the first release, so old warehouses upgrade by re-running this file
-- (every load does). Guarded instead of `add column if not exists` because ALTER TABLE locks
-- the audit table even when there is nothing to do, which would queue a load behind another
-- year's load that has touched the audit table in its open transaction.
-- pid: the backend of a running load, so a later load can tell a crashed one (its backend is
-- gone) from one still waiting for the year's lock. seconds: wall time of the load.
do $$
begin
    if not exists (select from pg_attribute where attrelid = 'staging.load_audit'::regclass
                   and attname = 'pid' and not attisdropped) then
        alter table staging.load_audit add column pid integer;
    end if;
    if not exists (select from pg_attribute where attrelid = 'staging.load_audit'::regclass
                   and attname = 'seconds' and not attisdropped) then
        alter table staging.load_audit add column seconds double precision;
    end if;
    -- month: the BTS month a load replaced (null for a whole year from a yearly file).
    if not exists (select from pg_attribute where attrelid = 'staging.load_audit'::regclass
                   and attname = 'month' and not attisdropped) then
        alter table staging.load_audit add column month integer;
    end if;
end
$$;
