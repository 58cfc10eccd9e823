#!/usr/bin/env bash
# airflow-init: one-shot set-up before the Airflow services and Superset start (idempotent; it
# runs on every `docker compose up`).
#
# As root (compose runs it as "0:0", like Airflow's reference docker-compose.yaml) it creates
# the directories the services write and hands them to AIRFLOW_UID:0 — a fresh named volume on
# a mount point is owned by root — then drops to that uid for everything else: the metadata
# schema, the UI's admin user, and the warehouse's roles and logins.
#
# Environment (nothing is hard-wired, so the tests run it outside Docker):
#   AIRFLOW_UID            the uid the Airflow services run as (default 50000, the image's user)
#   AIRFLOW_WRITABLE_DIRS  space-separated directories those services write (volume mount points)
#   AIRFLOW_ADMIN_USER, AIRFLOW_ADMIN_PASSWORD   the UI's admin: created once, never reset
#   PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE   the warehouse owner, for the roles script
#   LAKEHOUSE_{LOADER,TRANSFORM,ML,SUPERSET}_PASSWORD   the logins' passwords (lakehouse/roles.py)
#   AIRFLOW_INIT_SETPRIV_ARGS   extra `setpriv` options for the unprivileged part (tests)
set -euo pipefail

uid="${AIRFLOW_UID:-50000}"
if [ "$(id -u)" = 0 ]; then
  for dir in ${AIRFLOW_WRITABLE_DIRS:-}; do
    mkdir -p "$dir"
    chown -R "$uid:0" "$dir"
    chmod u+rwx,g+rwx "$dir"
    echo "airflow-init: $dir belongs to $uid:0"
  done
  if [ "$uid" != 0 ]; then
    home="$(getent passwd "$uid" | cut -d: -f6 || true)"
    # shellcheck disable=SC2086  # the extra options are words on purpose
    exec env HOME="${home:-/tmp}" setpriv --reuid="$uid" --regid=0 --clear-groups \
      ${AIRFLOW_INIT_SETPRIV_ARGS:-} -- bash "${BASH_SOURCE[0]}" "$@"
  fi
fi

airflow db migrate

case "${AIRFLOW__CORE__AUTH_MANAGER:-}" in
  *FabAuthManager)
    # Creates the user when missing and leaves an existing one (and a password changed in the
    # UI) alone: FAB's `users create` only reports that the user exists.
    airflow users create --role Admin --username "$AIRFLOW_ADMIN_USER" \
      --password "$AIRFLOW_ADMIN_PASSWORD" --firstname Lakehouse --lastname Admin \
      --email "${AIRFLOW_ADMIN_EMAIL:-admin@localhost}"
    ;;
  *)
    # The simple auth manager (development only, per Airflow's docs) reads the passwords from
    # a file; .env is where this password lives, so the file follows it.
    python - <<'PY'
import json
import os

path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
tmp = f"{path}.tmp"
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as fh:
    json.dump({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}, fh)
os.replace(tmp, path)
print(f"airflow-init: simple auth manager password file {path}")
PY
    ;;
esac

python -m lakehouse.roles apply --superset-login --part-logins
