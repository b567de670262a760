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

token=$(curl -sSf -X PUT "${IMDS}/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 900")
imds() { curl -sSf -H "X-aws-ec2-metadata-token: ${token}" "${IMDS}/latest/meta-data/$1"; }

job_id=$(imds "tags/instance/${JOB_ID_TAG}")
instance_id=$(imds instance-id)
AWS_DEFAULT_REGION=$(imds placement/region)
export AWS_DEFAULT_REGION
log "job ${job_id} on ${instance_id} in ${AWS_DEFAULT_REGION}"

dnf install -y -q python3-boto3

workdir=$(mktemp -d)
python3 - "${BUCKET}" "${SCRIPT_KEY}" "${workdir}/worker.py" <<'PY'
import sys

import boto3

boto3.client("s3").download_file(sys.argv[1], sys.argv[2], sys.argv[3])
PY
log "worker script fetched"

python3 "${workdir}/worker.py" --job-id="${job_id}" --instance-id="${instance_id}" --table="${TABLE}" --bucket="${BUCKET}"
