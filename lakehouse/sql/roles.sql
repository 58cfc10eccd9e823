-- Least-privilege roles for the lakehouse warehouse. Idempotent; applied by
-- `python -m lakehouse.roles apply` (also `make roles`, `make db-start`, and the compose
-- Postgres init) as the warehouse owner, in the lakehouse database.
--
--   lakehouse_loader     owns staging            (loaders/ writes raw rows)
--   lakehouse_transform  owns silver and gold,   reads staging and ml (dbt)
--   lakehouse_ml         owns ml,                reads gold
--   lakehouse_reader     reads gold and ml       (Superset, analysts)
--
-- They are NOLOGIN group roles granted to the user running this script, so every part keeps
-- connecting with the usual PG* variables and `lakehouse.warehouse.connect(part=...)` does
-- `SET ROLE` to its own role. On a server the parts log in as their own LOGIN roles instead,
-- each a member of one group role only (`apply --part-logins`, lakehouse/roles.py: their
-- passwords come from the environment, never from this file). Roles are cluster-wide but
-- grants are per database: run the script in every database of the cluster the parts use.

do $$
declare
    r text;
begin
    foreach r in array array['lakehouse_loader', 'lakehouse_transform', 'lakehouse_ml',
                             'lakehouse_reader'] loop
        if not exists (select from pg_roles where rolname = r) then
            execute format('create role %I nologin', r);
        end if;
        -- Explicit membership (not just a superuser's implicit one), so it is visible and survives.
        if not exists (select from pg_auth_members m
                       where m.roleid = r::regrole and m.member = current_user::regrole) then
            execute format('grant %I to %I', r, current_user);
        end if;
    end loop;
end
$$;

-- Each schema belongs to the one part that writes it: its role can create, replace and drop
-- its tables (partition swaps, dbt's rename dance) and nobody else can.
create schema if not exists staging authorization lakehouse_loader;
create schema if not exists silver authorization lakehouse_transform;
create schema if not exists gold authorization lakehouse_transform;
create schema if not exists ml authorization lakehouse_ml;
alter schema staging owner to lakehouse_loader;
alter schema silver owner to lakehouse_transform;
alter schema gold owner to lakehouse_transform;
alter schema ml owner to lakehouse_ml;
revoke all on schema staging, silver, gold, ml from public;

-- Objects created before the roles existed (e.g. by the session user) move to the schema's
-- role, or that role could not replace them later. Sequences owned by a column move with it.
do $$
declare
    obj record;
begin
    for obj in
        select n.nspname, c.relname, c.relkind, pg_get_userbyid(n.nspowner) as schema_owner
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname in ('staging', 'silver', 'gold', 'ml')
          and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
          and c.relowner <> n.nspowner
          -- objects that follow another's owner (a sequence owned by a column, a TOAST table)
          -- are left to it; partitions (an automatic dependency on their parent) and tables
          -- with generated columns (an internal dependency on themselves) are not such objects
          and (c.relispartition or not exists (
              select from pg_depend d
              where d.classid = 'pg_class'::regclass and d.objid = c.oid
                and d.deptype in ('a', 'i')
                and not (d.refclassid = 'pg_class'::regclass and d.refobjid = c.oid)
          ))
    loop
        execute format(
            'alter %s %I.%I owner to %I',
            case obj.relkind
                when 'v' then 'view'
                when 'm' then 'materialized view'
                when 'f' then 'foreign table'
                when 'S' then 'sequence'
                else 'table'
            end,
            obj.nspname, obj.relname, obj.schema_owner);
    end loop;
end
$$;

-- The writing parts keep their idempotent `create schema if not exists`, which PostgreSQL
-- checks against the database's CREATE privilege even when the schema exists.
do $$
begin
    execute format('grant create on database %I to lakehouse_loader, lakehouse_transform, '
                   'lakehouse_ml', current_database());
end
$$;

-- Read access, to the tables that exist now ...
grant usage on schema staging to lakehouse_transform;
grant select on all tables in schema staging to lakehouse_transform;
grant usage on schema gold to lakehouse_ml, lakehouse_reader;
grant select on all tables in schema gold to lakehouse_ml, lakehouse_reader;
grant usage on schema ml to lakehouse_transform, lakehouse_reader;
grant select on all tables in schema ml to lakehouse_transform, lakehouse_reader;

-- ... and to the tables created later, whether by the part's role or by the user running
-- this script (a part that connects without `SET ROLE`, e.g. dbt without DBT_ROLE).
alter default privileges for role lakehouse_loader in schema staging
    grant select on tables to lakehouse_transform;
alter default privileges for role lakehouse_transform in schema gold
    grant select on tables to lakehouse_ml, lakehouse_reader;
alter default privileges for role lakehouse_ml in schema ml
    grant select on tables to lakehouse_transform, lakehouse_reader;
alter default privileges in schema staging
    grant select on tables to lakehouse_transform;
-- silver and gold belong to the transform part, which also reads them as the session user
-- made them (the exporter, loaders/export.py, reads both as lakehouse_transform).
alter default privileges in schema silver
    grant select on tables to lakehouse_transform;
alter default privileges in schema gold
    grant select on tables to lakehouse_transform, lakehouse_ml, lakehouse_reader;
alter default privileges in schema ml
    grant select on tables to lakehouse_transform, lakehouse_reader;
