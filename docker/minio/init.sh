#!/bin/sh
# minio-init: one-shot, idempotent. With MinIO's root login (which no other service gets) it
# creates the lake bucket and a login for the pipeline that may only list, read, write and
# delete inside that bucket (`mc admin policy`). Runs in the minio/minio image, whose `mc` the
# health check uses too; it calls nothing but `mc` and shell built-ins, as that image is minimal.
#
# Environment: MINIO_URL, MINIO_ROOT_USER, MINIO_ROOT_PASSWORD, LAKE_BUCKET, MINIO_LAKE_USER,
# MINIO_LAKE_PASSWORD, MINIO_LAKE_POLICY (default lakehouse-lake).
set -eu
policy="${MINIO_LAKE_POLICY:-lakehouse-lake}"

mc alias set root "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "root/$LAKE_BUCKET"

# `policy create` replaces a policy of the same name, so an edited policy applies on next up.
mc admin policy create root "$policy" /dev/stdin <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow",
     "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
     "Resource": ["arn:aws:s3:::$LAKE_BUCKET"]},
    {"Effect": "Allow",
     "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                "s3:GetObjectTagging", "s3:PutObjectTagging",
                "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
     "Resource": ["arn:aws:s3:::$LAKE_BUCKET/*"]}
  ]
}
JSON
# `user add` on an existing user sets its secret: a changed .env takes effect on the next up.
mc admin user add root "$MINIO_LAKE_USER" "$MINIO_LAKE_PASSWORD"
info="$(mc admin user info root "$MINIO_LAKE_USER")"
case "$info" in
  *"$policy"*) ;;  # attached on an earlier start; attaching again is an error
  *) mc admin policy attach root "$policy" --user "$MINIO_LAKE_USER" ;;
esac
echo "minio-init: bucket $LAKE_BUCKET; user $MINIO_LAKE_USER limited to it by policy $policy"
