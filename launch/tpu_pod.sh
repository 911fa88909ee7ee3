#!/usr/bin/env bash
# TPU VM pod slice: the same command on every worker.
#
#   bash launch/tpu_pod.sh TPU_NAME ZONE train --config configs/streamdit_4b.py --workdir gs://bucket/runs/4b
#
# Expects the project installed on every worker (e.g. `pip install -e .` in the same path on each) and
# gcloud authenticated here. jax.distributed.initialize() finds the other workers on its own
# (streamdit_jax/distributed.py); only worker 0 logs and writes summaries.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  sed -n '4p' "$0" >&2
  exit 2
fi
name=$1 zone=$2
shift 2
command="cd ${STREAMDIT_DIR:-\$HOME/streamdit-jax} && ${PYTHON:-python3} -m streamdit_jax.cli $(printf '%q ' "$@")"
gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all --command "$command"
