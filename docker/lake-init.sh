#!/usr/bin/env bash
# One-shot: create the lake bucket in MinIO and put sample bronze years in it. A year already
# in the lake is left alone; a real Kaggle file in ./data/lake/01_bronze/ (mounted at /seed)
# is uploaded as it is; otherwise a synthetic year is generated straight into the bucket.
set -euo pipefail
python - <<'PY'
import os
import boto3
s3 = boto3.client("s3")
bucket = os.environ["LAKE_BUCKET"]
existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
if bucket not in existing:
    s3.create_bucket(Bucket=bucket)
print(f"bucket {bucket} ready")
PY
for year in ${LAKEHOUSE_SAMPLE_YEARS}; do
  if python -c "import sys; from lakehouse.lake import Lake, bronze_key; sys.exit(0 if Lake.from_env().exists(bronze_key($year)) else 1)"; then
    echo "bronze $year already in the lake"
  elif [ -f "/seed/01_bronze/$year.csv" ]; then
    python -c "from lakehouse.lake import Lake, bronze_key; Lake.from_env().put_file('/seed/01_bronze/$year.csv', bronze_key($year))"
    echo "uploaded /seed/01_bronze/$year.csv"
  else
    python -m loaders generate --year "$year" --rows "${LAKEHOUSE_SAMPLE_ROWS}"
  fi
done
