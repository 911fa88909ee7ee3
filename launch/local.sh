#!/usr/bin/env bash
# Local multi-process job on one machine's CPU (gloo collectives): a real multi-host run in miniature.
#
#   bash launch/local.sh PROCESSES DEVICES_PER_PROCESS <streamdit arguments...>
#   bash launch/local.sh 2 4 train --config tiny --workdir runs/two-process
#
# Each process gets DEVICES_PER_PROCESS fake CPU devices; together they form one mesh of
# PROCESSES x DEVICES_PER_PROCESS devices. STREAMDIT_PORT picks the coordinator port (default 12355),
# PYTHON the interpreter (default python3). Exits non-zero if any process fails.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  sed -n '4,5p' "$0" >&2
  exit 2
fi
processes=$1 devices=$2
shift 2
port=${STREAMDIT_PORT:-12355}
pids=()
for ((rank = 0; rank < processes; rank++)); do
  JAX_PLATFORMS=cpu JAX_NUM_CPU_DEVICES=$devices \
    STREAMDIT_COORDINATOR=localhost:$port STREAMDIT_NUM_PROCESSES=$processes STREAMDIT_PROCESS_ID=$rank \
    "${PYTHON:-python3}" -m streamdit_jax.cli "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
exit $status
