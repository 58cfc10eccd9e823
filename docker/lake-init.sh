#!/usr/bin/env bash
# lake-init: one-shot, idempotent check of the lake before the scheduler starts. It runs with
# the pipeline's own S3 login (minio-init limits it to the lake bucket), proves that login can
# write the lake, and says which bronze years are there and how to add the missing ones.
#
# Nothing is fabricated unless asked: LAKEHOUSE_SAMPLE_YEARS="2017 2018" generates those years
# (LAKEHOUSE_SAMPLE_ROWS rows each) when they are not in the lake yet; empty, the default,
# generates nothing. A year already in the lake, real or generated, is never touched.
#
# Environment: LAKE_URL and boto3's AWS_* variables (the lake), LAKEHOUSE_YEARS (the years the
# DAG's catch-up covers), LAKEHOUSE_SAMPLE_YEARS, LAKEHOUSE_SAMPLE_ROWS (default 300000).
set -euo pipefail

for year in ${LAKEHOUSE_SAMPLE_YEARS:-}; do
  if ! [[ "$year" =~ ^[0-9]{4}$ ]]; then
    echo "error: LAKEHOUSE_SAMPLE_YEARS=\"$LAKEHOUSE_SAMPLE_YEARS\": \"$year\" is not a year; use e.g. \"2017 2018\" or leave it empty" >&2
    exit 2
  fi
done

python - <<'PY'
import os
import sys
import uuid

from botocore.exceptions import BotoCoreError, ClientError

from lakehouse.airflow_support import lake_years
from lakehouse.lake import Lake, bronze_key

lake = Lake.from_env()
probe = f"_lake-init/{uuid.uuid4().hex}"
try:
    with lake.open_write(probe) as fh:
        fh.write(b"lake-init write check\n")
    lake.delete(probe)
except (BotoCoreError, ClientError, OSError) as exc:
    sys.exit(f"error: cannot write the lake {lake.url}: {exc}; check LAKE_URL and the lake "
             "login (MINIO_LAKE_USER / MINIO_LAKE_PASSWORD in .env, created by minio-init)")
years = lake_years()
present = [y for y in years if lake.exists(bronze_key(y))]
missing = [y for y in years if y not in present]
print(f"lake-init: {lake.url} is writable; bronze years present: "
      f"{', '.join(map(str, present)) or 'none'}")
if missing:
    print(f"lake-init: not in the lake yet: {', '.join(map(str, missing))}; their runs fail "
          "until the file is there. Add the Kaggle download with `docker compose run --rm "
          "airflow-cli python -m loaders ingest /import/<file or folder>` (docs/deploy.md)")
PY

for year in ${LAKEHOUSE_SAMPLE_YEARS:-}; do
  if python -c "import sys; from lakehouse.lake import Lake, bronze_key; sys.exit(0 if Lake.from_env().exists(bronze_key($year)) else 1)"; then
    echo "lake-init: bronze $year is already in the lake: left as it is"
  else
    echo "lake-init: generating sample year $year (LAKEHOUSE_SAMPLE_YEARS asked for it)"
    python -m loaders generate --year "$year" --rows "${LAKEHOUSE_SAMPLE_ROWS:-300000}"
  fi
done
