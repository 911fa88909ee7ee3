#!/usr/bin/env bash
# The GPU rows of docs/benchmarks.md in one run (issues 8, 19 and 20), on the device machine:
#   here:  ../shared/tools/wheels-for-gpu .whl diffusers huggingface-hub safetensors regex
#   there: bash scripts/gpu_bench.sh   (carry .whl; results land in $OUT, default ./bench-gpu)
# Tried first on the CPU at test size: SIZE=tiny bash scripts/gpu_bench.sh (every preset becomes `tiny`).
# Writes one JSON per benchmark and log.txt (with the docs/benchmarks.md rows) to $OUT.
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
if [ "${SIZE:-}" = tiny ]; then
  stream=tiny; train=tiny; peer=tiny; scheme=0,4,2,1; steps=(--steps 3 --warmup 1)
else
  stream=streamdit_4b:distilled,cudnn=True; train=wan2_1_1_3b:cudnn=True; peer=streamdit_4b:distilled
  scheme=0,8,2,1; steps=()
fi
bench() { echo "+ streamdit bench $*" >>"$out/log.txt"; python3 -m streamdit_jax.cli bench "$@" >>"$out/log.txt" 2>&1; }
# The 4B distilled stream at 512x512 (bf16, cuDNN attention): the DiT alone and with the VAE's decoder,
# then with the tiny decoder.
bench rollout --config "$stream" --scheme "$scheme" "${steps[@]}" --json "$out/rollout_4b.json"
bench rollout --config "$stream" --scheme "$scheme" "${steps[@]}" --decoder tiny --modes decoded \
  --json "$out/rollout_4b_tiny.json"
bench train --config "$train" --config.mesh.shape=1,1,1,1 --config.train.batch_size=1 --steps 5 \
  --json "$out/train_1_3b.json"
bench peer --config "$peer" --modes forward "${steps[@]}" --json "$out/peer_4b.json"
# Issue 20: the plan of that training step on this GPU (its compiler, cuDNN attention) against the
# allocator peak `bench train` measured above.
echo "+ streamdit plan" >>"$out/log.txt"
python3 -m streamdit_jax.cli plan --config "$train" --config.mesh.shape=1,1,1,1 --config.train.batch_size=1 \
  --largest-batch --json "$out/plan_1_3b.json" >>"$out/log.txt" 2>&1
grep -E '^\| (streamdit_4b|wan2_1_1_3b|tiny)' "$out/log.txt"
