#!/usr/bin/env bash
# The GPU rows of docs/benchmarks.md in one run (issue 8's targets), on the device machine:
#   here:  ../shared/tools/wheels-for-gpu .whl diffusers huggingface-hub safetensors regex
#   there: bash scripts/gpu_bench.sh   (carry .whl; results land in $OUT, default ./bench-gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench-gpu}
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
bench() { echo "+ streamdit bench $*" >>"$out/log.txt"; python3 -m streamdit_jax.cli bench "$@" >>"$out/log.txt" 2>&1; }
bench rollout --config streamdit_4b:distilled,cudnn=True --scheme 0,8,2,1 --json "$out/rollout_4b.json"
bench train --config wan2_1_1_3b:cudnn=True --config.mesh.shape=1,1,1,1 --config.train.batch_size=1 \
  --steps 5 --json "$out/train_1_3b.json"
bench peer --config streamdit_4b:distilled --modes forward --json "$out/peer_4b.json"
grep -E '^\| (streamdit_4b|wan2_1_1_3b)' "$out/log.txt"
