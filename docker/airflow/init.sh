#!/usr/bin/env bash
# One-shot set-up before the Airflow services start (idempotent, runs on every `up`):
# metadata schema, the UI login, and the warehouse's least-privilege roles.
set -euo pipefail
airflow db migrate
python - <<'PY'
import json, os
path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as fh:
    json.dump({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}, fh)
os.chmod(path, 0o600)
PY
python -m lakehouse.roles apply --superset-login
