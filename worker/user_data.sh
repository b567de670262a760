#!/bin/bash
# filepipe worker VM: run one job, then power off (the launch template sets shutdown behaviour to terminate).
# Rendered for one stack by worker/userdata.py; its placeholders are replaced with shell-quoted values.
set -euo pipefail

readonly BUCKET=__BUCKET__
readonly TABLE=__TABLE__
readonly SCRIPT_KEY=__SCRIPT_KEY__
readonly JOB_ID_TAG=__JOB_ID_TAG__
readonly TIMEOUT_MINUTES=__TIMEOUT_MINUTES__
readonly IMDS="${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}"

log() { printf '%s filepipe: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

power_off() {
  local status=$?
  log "exit status ${status}; powering off"
  shutdown -h now
}
trap power_off EXIT

# Watchdog: whatever hangs below, the VM is gone after the job timeout.
shutdown -h "+${TIMEOUT_MINUTES}"

# The instance metadata service may not answer in the first moments of a boot, or may throttle: each call is
# retried (refused connections and 5xx/429 answers too) and each attempt bounded, so a VM never hangs here until the
# watchdog; a VM that still cannot read its metadata powers off (the sweeper fails its job).
readonly IMDS_CURL=(-sSf --retry 5 --retry-delay 1 --retry-connrefused --connect-timeout 2 --max-time 5)
token=$(curl "${IMDS_CURL[@]}" -X PUT "${IMDS}/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 900")
imds() { curl "${IMDS_CURL[@]}" -H "X-aws-ec2-metadata-token: ${token}" "${IMDS}/latest/meta-data/$1"; }

job_id=$(imds "tags/instance/${JOB_ID_TAG}")
instance_id=$(imds instance-id)
AWS_DEFAULT_REGION=$(imds placement/region)
export AWS_DEFAULT_REGION
log "job ${job_id} on ${instance_id} in ${AWS_DEFAULT_REGION}"

# The worker needs boto3, which Amazon Linux 2023 does not preinstall (an AMI with it baked in, set as amiParameter,
# skips the install). One Python process fetches worker.py from S3 with boto3 and runs it (runpy), so boto3 is
# imported once; it exits NO_BOTO3 at once, before any AWS call, when boto3 is missing.
readonly NO_BOTO3=75
readonly DNF_LIMIT_SECONDS=50
workdir=$(mktemp -d)

run_worker() {
  python3 - "${NO_BOTO3}" "${BUCKET}" "${SCRIPT_KEY}" "${workdir}/worker.py" \
    --job-id="${job_id}" --instance-id="${instance_id}" --table="${TABLE}" --bucket="${BUCKET}" <<'PY'
import runpy
import sys

try:
    import boto3
except ImportError:
    sys.exit(int(sys.argv[1]))
bucket, key, path = sys.argv[2:5]
boto3.client("s3").download_file(bucket, key, path)
print("filepipe: worker script fetched", flush=True)
sys.argv = [path, *sys.argv[5:]]
runpy.run_path(path, run_name="__main__")
PY
}

# Ends the job FAILED with `reason` if it is still LAUNCHING, with the AWS CLI (part of AL2023; no boto3 needed).
fail_job() {
  local now
  now=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
  aws dynamodb update-item --table-name "${TABLE}" --key "{\"id\": {\"S\": \"${job_id}\"}}" \
    --update-expression "SET #status = :failed, #error = :reason, #finished = :now, #updated = :now" \
    --condition-expression "#status = :launching" \
    --expression-attribute-names '{"#status": "status", "#error": "error", "#finished": "finished_at", "#updated": "updated_at"}' \
    --expression-attribute-values "{\":failed\": {\"S\": \"FAILED\"}, \":launching\": {\"S\": \"LAUNCHING\"}, \":reason\": {\"S\": \"$1\"}, \":now\": {\"S\": \"${now}\"}}" \
    || log "could not record the failure on job ${job_id}"
}

# Only what the worker needs (no weak dependencies); a repository that does not answer fails within a minute: dnf
# gives up on a connection after 10 s and retries twice, and `timeout` bounds the whole install.
install_boto3() {
  log "boto3 is not installed: installing python3-boto3"
  if ! timeout "${DNF_LIMIT_SECONDS}" dnf install -y -q --setopt=install_weak_deps=False \
    --setopt=timeout=10 --setopt=retries=2 python3-boto3; then
    fail_job "The VM could not install boto3 from the Amazon Linux package repositories within ${DNF_LIMIT_SECONDS} seconds (are they reachable through the S3 gateway endpoint?)."
    exit 1
  fi
}

status=0
run_worker || status=$?
if ((status == NO_BOTO3)); then
  install_boto3
  run_worker
elif ((status != 0)); then
  exit "${status}"
fi
