#!/usr/bin/env bash
# The GPU checks of issue 6, run on a machine with an NVIDIA GPU through WGPU (Vulkan), from
# binaries built elsewhere (docs/backends.md): parity tests, the demo, the SmolLM2-shape bench.
#   BIN=.devbin OUT=/some/dir scripts/gpu_checks.sh
# BIN holds: orpo (cpu,wgpu), parity (orpo-model test binary, wgpu), bench_train (wgpu).
set -uo pipefail
BIN=${BIN:-.devbin}
OUT=${OUT:-/tmp/gpu-checks}
mkdir -p "$OUT"
export XDG_RUNTIME_DIR=/tmp/xdg && mkdir -p -m 700 $XDG_RUNTIME_DIR
log() { echo "== $(date +%T) $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
# The test binaries name fixtures by the absolute path they were built in.
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }

log "parity tests on wgpu"
ORPO_TEST_DEVICE=wgpu timeout 60 $BIN/parity --test-threads 1 2>&1 | tail -15

bench() { log "bench_train $*"; timeout "$1" $BIN/bench_train --steps 10 --warmup 2 "${@:2}" 2>&1 | tail -3; }
bench 90 --dtype f32

log "demo on wgpu (full config)"
t0=$SECONDS
timeout 150 $BIN/orpo train --device wgpu --config configs/demo.yaml \
    --set output_dir=/tmp/demo-wgpu > $OUT/demo-wgpu.log 2>&1
echo "demo wall $((SECONDS - t0)) s"
grep -E "eval @|^\{|rror" $OUT/demo-wgpu.log | cut -c1-300; tail -2 $OUT/demo-wgpu.log
cp /tmp/demo-wgpu/metrics.jsonl $OUT/demo-wgpu-metrics.jsonl 2>/dev/null

bench 50 --dtype f16
bench 50 --dtype f32 --gradient-checkpointing
bench 50 --dtype f32 --pairs 8
bench 20 --dtype bf16
