#!/usr/bin/env bash
# GPU checks for a lent machine with an NVIDIA GPU: CUDA (issue 19) and, for comparison, WGPU
# (issue 6's checks, docs/backends.md). Two halves, because the GPU machine reaches no package
# registry (it cannot build) and takes at most 64 MiB with the working tree:
#
#   scripts/gpu_checks.sh build   # here: release binaries with CUDA and WGPU, stripped, xz'd into
#                                 # $CARRY (default target-gpu/carry, ~size printed); then call the
#                                 # device tool with carry: ["target-gpu/carry"] and command
#   scripts/gpu_checks.sh run [cuda|wgpu]   # there: unpacks $CARRY, runs the CUDA part, the
#                                 # WGPU part or both (default), logs under $OUT
#
# `run` prints the machine (nvidia-smi, `orpo doctor`), runs the orpo-model parity tests and the
# TRL trajectory test with ORPO_TEST_DEVICE=cuda, bench_train f32 and bf16 at the SmolLM2-135M
# shape (2x512 and 8x512 tokens) and the SmolLM2-1.7B shape (1x1024) on CUDA and the same on
# WGPU (bf16 is refused there: no bf16 arithmetic through Vulkan), then a short demo run on
# CUDA. bench_train prints one JSON line per run: tokens_per_s, device_reserved_mib_max (the
# largest pool reservation at a step's end) and mfu against PEAK_TFLOPS_<DTYPE> (H100/H200 SXM
# dense peaks below unless set). The timeouts add up to ~10 minutes per part at most (the
# device tool's limit for one command): run the parts in two calls if the first one nears it.
# Only one GPU is lent here, so the NCCL all-reduce of `--devices cuda:0,cuda:1` is not run.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=${CARRY:-target-gpu/carry}
OUT=${OUT:-/tmp/gpu-checks}
FEATURES=orpo-cli/wgpu,orpo-cli/cuda,orpo-model/wgpu,orpo-model/cuda,orpo-train/wgpu,orpo-train/cuda
# The device tool's limit is 64 MiB with the working tree (~7 MiB of tracked files).
CARRY_LIMIT_MIB=${CARRY_LIMIT_MIB:-56}
log() { echo "== $(date +%T) $*"; }

build() {
    # Its own target dir: no debug info and stripped symbols change every crate's fingerprint.
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-gpu}
    export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols
    mkdir -p "$CARRY"
    # One feature set for both invocations, so the dependencies are built once.
    cargo build --release -p orpo-cli -p orpo-train --features "$FEATURES" \
        --bin orpo --example bench_train || return 1
    local json
    json=$(cargo test --release -p orpo-model -p orpo-train --features "$FEATURES" \
        --test parity --test trl_trajectory --no-run --message-format=json) || return 1
    local exe name
    for exe in "$CARGO_TARGET_DIR/release/orpo" "$CARGO_TARGET_DIR/release/examples/bench_train" \
        $(grep -o '"executable":"[^"]*"' <<<"$json" | cut -d'"' -f4); do
        name=$(basename "$exe" | sed 's/-[0-9a-f]\{16\}$//')
        xz -T0 -6 -c "$exe" >"$CARRY/$name.xz" || return 1
        echo "$name: $(du -m "$exe" | cut -f1) MiB, $(du -m "$CARRY/$name.xz" | cut -f1) MiB xz"
    done
    local total
    total=$(du -cm "$CARRY"/*.xz | tail -1 | cut -f1)
    echo "carry: $CARRY, $total MiB (limit $CARRY_LIMIT_MIB MiB)"
    [ "$total" -le "$CARRY_LIMIT_MIB" ] || { echo "too large for the device tool" >&2; return 1; }
}

# Dense peak TFLOP/s of the GPU for dtype $1 (f32 without tensor cores; bf16/f16 tensor cores),
# from nvidia-smi's name; PEAK_TFLOPS_F32 / _BF16 / _F16 override.
peak() {
    local var="PEAK_TFLOPS_$(tr a-z A-Z <<<"$1")"
    if [ -n "${!var:-}" ]; then echo "${!var}"; return; fi
    case "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" in
        *H200* | *H100*SXM* | *"H100 80GB HBM3"*) [ "$1" = f32 ] && echo 67 || echo 989 ;;
        *A100*) [ "$1" = f32 ] && echo 19.5 || echo 312 ;;
        *) echo "" ;;
    esac
}

run() {
    local part=${1:-all}
    mkdir -p "$OUT" /tmp/gpu-bin
    local f
    for f in "$CARRY"/*.xz; do
        xz -dc "$f" >"/tmp/gpu-bin/$(basename "$f" .xz)" && chmod +x "/tmp/gpu-bin/$(basename "$f" .xz)"
    done
    local BIN=/tmp/gpu-bin
    export XDG_RUNTIME_DIR=/tmp/xdg && mkdir -p -m 700 "$XDG_RUNTIME_DIR"
    # The test binaries name fixtures by the absolute path they were built in.
    [ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }
    # NCCL from the image's Python wheel: cudarc looks for libnccl.so, the wheel has libnccl.so.2.
    local nccl
    nccl=$(python3 -c 'import nvidia.nccl as m; print(m.__path__[0] + "/lib")' 2>/dev/null)
    if [ -n "$nccl" ] && [ -e "$nccl/libnccl.so.2" ]; then
        mkdir -p /tmp/nccl && ln -sf "$nccl/libnccl.so.2" /tmp/nccl/libnccl.so
        export LD_LIBRARY_PATH="/tmp/nccl${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    log "orpo doctor"
    $BIN/orpo doctor 2>&1 | tee "$OUT/doctor.log"

    if [ "$part" != wgpu ]; then
        log "orpo-model parity tests on cuda"
        ORPO_TEST_DEVICE=cuda timeout 90 $BIN/parity --test-threads 1 2>&1 | tail -15
        log "TRL trajectory (20 steps) on cuda"
        ORPO_TEST_DEVICE=cuda timeout 90 $BIN/trl_trajectory --test-threads 1 2>&1 | tail -15
    fi

    # SmolLM2-1.7B's shape (random weights), for the 1x1024 runs.
    cat >/tmp/smollm2-1.7b.json <<'JSON'
{"model_type":"llama","vocab_size":49152,"hidden_size":2048,"intermediate_size":8192,
 "num_hidden_layers":24,"num_attention_heads":32,"num_key_value_heads":32,"rms_norm_eps":1e-5,
 "rope_theta":130000,"max_position_embeddings":8192,"tie_word_embeddings":true}
JSON
    bench() { # backend timeout dtype args...
        local backend=$1 limit=$2 dtype=$3
        shift 3
        log "bench_train $backend $dtype $*"
        BURN_DEVICE=$backend timeout "$limit" $BIN/bench_train --steps 6 --warmup 2 --dtype "$dtype" \
            ${PEAK:+--peak-tflops "$PEAK"} "$@" 2>&1 | tee -a "$OUT/bench-$backend.jsonl" | tail -2
    }
    local backend dtype backends
    case "$part" in cuda | wgpu) backends=$part ;; *) backends="cuda wgpu" ;; esac
    for backend in $backends; do
        for dtype in f32 bf16; do
            PEAK=$(peak "$dtype")
            bench $backend 45 $dtype --pairs 2
            bench $backend 60 $dtype --pairs 8
            bench $backend 90 $dtype --pairs 1 --prompt 256 --completion 768 \
                --model-config /tmp/smollm2-1.7b.json
        done
    done

    if [ "$part" != wgpu ]; then
        log "demo on cuda (100 steps)"
        timeout 60 $BIN/orpo train --device cuda --config configs/demo.yaml \
            --set output_dir=/tmp/demo-cuda --set max_steps=100 >"$OUT/demo-cuda.log" 2>&1
        grep -E "eval @|^\{|rror" "$OUT/demo-cuda.log" | cut -c1-300
        tail -2 "$OUT/demo-cuda.log"
    fi
}

case "${1:-}" in
    build) build ;;
    run) run "${2:-all}" ;;
    *) echo "usage: scripts/gpu_checks.sh build|run" >&2; exit 2 ;;
esac
