//! ORPO training throughput at the SmolLM2-135M shape (hidden 576, 30 layers, 9 heads, 3 KV
//! heads, intermediate 1536, vocab 49152, tied; random weights), the figures of issue 9:
//! training tokens per second (non-padding tokens of chosen and rejected), seconds per step
//! (median after warm-up), peak resident memory, and the time from process start to the end of
//! the first step. `scripts/bench_trl.py` measures the same for TRL's `ORPOTrainer`.
//!
//! One step is what `OrpoTrainer` does per optimizer step without accumulation: collate the
//! pairs, forward, the chunked ORPO loss, backward, global-norm clipping, AdamW.
//!
//!     cargo run --release -p orpo-train --example bench_train -- \
//!         [--pairs 2] [--prompt 128] [--completion 384] [--steps 12] [--warmup 2] [--layers 30] \
//!         [--dtype f32|bf16|f16] [--gradient-checkpointing] [--chunk-size 512] \
//!         [--model-config config.json] [--peak-tflops T]
//!
//! `--model-config` takes another shape from a Hugging Face `config.json` (e.g. SmolLM2-1.7B's;
//! `--layers` is then ignored). `--peak-tflops` (the device's dense peak for the run's dtype)
//! adds `mfu`: the ≈ 6 · parameters FLOP per training token (attention's score products left
//! out) per second, over that peak.
//!
//! The device is `Device::default()`: the CPU backend, or the GPU backend built in with
//! `--features wgpu` / `--features cuda` (`BURN_DEVICE=flex` picks the CPU then). `--dtype` and
//! `--gradient-checkpointing` go through `orpo_train::training_device`, as the config keys
//! `bf16` / `fp16` / `gradient_checkpointing` do. Each step ends with `device.sync()`, so GPU
//! timings hold the whole step. Prints one JSON line.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::Device;
use orpo_data::Collator;
use orpo_loss::{OrpoLossConfig, orpo_loss};
use orpo_model::DecoderForCausalLM;
use orpo_train::optim::{AdamW, AdamWSettings, clip_global_norm};
use orpo_train::{OrpoConfig, OrpoStep, training_device};

/// The `orpo` binary's allocator, so that these figures are the binary's.
#[global_allocator]
static GLOBAL: orpo_alloc::TrainingAllocator = orpo_alloc::TrainingAllocator;

mod common;
use common::{smollm2_config, status_mib, synthetic_pairs};

struct Args {
    pairs: usize,
    prompt: usize,
    completion: usize,
    steps: usize,
    warmup: usize,
    layers: usize,
    dtype: String,
    gradient_checkpointing: bool,
    /// Token positions per LM-head chunk of the loss (`logits_chunk_size`).
    chunk_size: usize,
    /// A Hugging Face `config.json` for another shape than SmolLM2-135M's.
    model_config: Option<String>,
    /// The device's dense peak TFLOP/s in the run's dtype, for `mfu`.
    peak_tflops: Option<f64>,
}

fn parse_args() -> Args {
    let mut args = Args {
        pairs: 2,
        prompt: 128,
        completion: 384,
        steps: 12,
        warmup: 2,
        layers: 30,
        dtype: "f32".into(),
        gradient_checkpointing: false,
        chunk_size: OrpoConfig::default().logits_chunk_size,
        model_config: None,
        peak_tflops: None,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        if flag == "--gradient-checkpointing" {
            args.gradient_checkpointing = true;
            continue;
        }
        let value = raw.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let number = || -> usize {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{flag} needs a number, not {value}"))
        };
        match flag.as_str() {
            "--pairs" => args.pairs = number(),
            "--prompt" => args.prompt = number(),
            "--completion" => args.completion = number(),
            "--steps" => args.steps = number(),
            "--warmup" => args.warmup = number(),
            "--layers" => args.layers = number(),
            "--dtype" => args.dtype = value.clone(),
            "--chunk-size" => args.chunk_size = number(),
            "--model-config" => args.model_config = Some(value.clone()),
            "--peak-tflops" => {
                args.peak_tflops = Some(
                    value
                        .parse()
                        .unwrap_or_else(|_| panic!("--peak-tflops needs a number, not {value}")),
                )
            }
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// Seconds since this process started (from `/proc/self/stat` and the system uptime), so the
/// time to the first step includes loading the binary, as Python's includes its imports.
fn seconds_since_process_start() -> f64 {
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit(')').next().unwrap_or("");
    let start_ticks: f64 = after_comm
        .split_whitespace()
        .nth(19) // field 22 overall: starttime
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    uptime - start_ticks / ticks_per_s
}

fn main() {
    let args = parse_args();
    let config = match &args.model_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("--model-config {path}: {e}"));
            orpo_model::DecoderConfig::from_json_str(&text, path.as_ref())
                .unwrap_or_else(|e| panic!("--model-config {path}: {e}"))
        }
        None => smollm2_config(args.layers),
    };
    let run = OrpoConfig {
        bf16: args.dtype == "bf16",
        fp16: args.dtype == "f16",
        gradient_checkpointing: args.gradient_checkpointing,
        ..Default::default()
    };
    assert!(
        ["f32", "bf16", "f16"].contains(&args.dtype.as_str()),
        "--dtype f32|bf16|f16"
    );
    let device = training_device(Device::default(), &run).expect("the device");
    device.seed(0);
    let mut model = DecoderForCausalLM::init(&config, &device);
    // What the first step's time is made of: start → model ready (random init), then the step.
    let model_ready = seconds_since_process_start();
    let pairs = synthetic_pairs(args.pairs, args.prompt, args.completion);
    let loss_config = OrpoLossConfig::new(0.1).with_chunk_size(args.chunk_size);
    let mut optim = AdamW::new(AdamWSettings::default());
    let collator = Collator::new(0);

    let mut step_seconds = Vec::new();
    let mut first_step_end = f64::NAN;
    let mut train_tokens = 0usize;
    let mut device_reserved_max = 0u64;
    // Summed over the timed steps: model forward, ORPO loss (both head passes, metrics read),
    // backward, clipping + AdamW.
    let mut phase_seconds = [0.0f64; 4];
    let mut first_step_phases = Vec::new();
    for step in 0..args.warmup + args.steps {
        let started = Instant::now();
        let batch = collator.collate(pairs.iter());
        train_tokens = batch.attention_mask.iter().filter(|&&m| m != 0).count();
        let (inputs, attention) = OrpoStep::batch_inputs(&batch, &device);
        // Phase marks (each after a device sync, so GPU phases are timed whole too).
        let mark = |phases: &mut Vec<f64>| {
            device.sync().expect("device sync");
            phases.push(started.elapsed().as_secs_f64());
        };
        let mut marks = Vec::with_capacity(4);
        let hidden = model.forward_hidden(inputs.input_ids.clone(), attention);
        mark(&mut marks);
        let out = orpo_loss(hidden, model.head_weight(), None, &inputs, &loss_config);
        let _metrics = out.metrics.to_metrics().to_named();
        let loss = out.loss;
        mark(&mut marks);
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        mark(&mut marks);
        let _norm = clip_global_norm(&model, &mut grads, 1.0);
        model = optim.step(1e-5, model, &mut grads);
        mark(&mut marks);
        let seconds = started.elapsed().as_secs_f64();
        if step >= args.warmup {
            let mut previous = 0.0;
            for (total, &m) in phase_seconds.iter_mut().zip(&marks) {
                *total += m - previous;
                previous = m;
            }
        }
        if let Some(usage) = device.memory_pool_usage() {
            device_reserved_max = device_reserved_max.max(usage.bytes_reserved);
        }
        if step == 0 {
            first_step_end = seconds_since_process_start();
            first_step_phases = marks.windows(2).map(|w| w[1] - w[0]).collect();
            first_step_phases.insert(0, marks[0]);
        }
        if step >= args.warmup {
            step_seconds.push(seconds);
        }
    }
    step_seconds.sort_by(f64::total_cmp);
    let median = step_seconds[step_seconds.len() / 2];
    // Embedding (tied with the head) and the layers' projections; norms are negligible.
    let (h, kv) = (
        config.hidden_size,
        config.num_key_value_heads * config.head_dim,
    );
    let q = config.num_attention_heads * config.head_dim;
    let head = if config.tie_word_embeddings { 1 } else { 2 };
    let params = head * config.vocab_size * h
        + config.num_hidden_layers * (2 * h * q + 2 * h * kv + 3 * h * config.intermediate_size);
    let flop_per_token = 6.0 * params as f64;
    let gflop_per_s = flop_per_token * train_tokens as f64 / median / 1e9;
    println!(
        "{}",
        serde_json::json!({
            "tool": "orpo-rs",
            "backend": format!("{device:?}"),
            "pairs": args.pairs,
            "prompt": args.prompt,
            "completion": args.completion,
            "layers": config.num_hidden_layers,
            "hidden_size": config.hidden_size,
            "params": params,
            "dtype": args.dtype,
            "chunk_size": args.chunk_size,
            "gradient_checkpointing": args.gradient_checkpointing,
            "train_tokens_per_step": train_tokens,
            "median_step_s": median,
            "min_step_s": step_seconds[0],
            "max_step_s": step_seconds[step_seconds.len() - 1],
            "tokens_per_s": train_tokens as f64 / median,
            "approx_gflop_per_s": gflop_per_s,
            "mfu": args.peak_tflops.map(|peak| gflop_per_s / (peak * 1e3)),
            "peak_rss_mib": status_mib("VmHWM:"),
            // The GPU allocator's reserved bytes, largest seen at a step's end (null on the CPU).
            "device_reserved_mib_max": (device_reserved_max > 0)
                .then(|| device_reserved_max as f64 / (1024.0 * 1024.0)),
            "first_step_end_s": first_step_end,
            // forward, loss, backward, clip + AdamW of the first step.
            "first_step_phase_s": first_step_phases,
            "model_ready_s": model_ready,
            "steps_timed": step_seconds.len(),
            "mean_phase_s": {
                "forward": phase_seconds[0] / step_seconds.len() as f64,
                "loss": phase_seconds[1] / step_seconds.len() as f64,
                "backward": phase_seconds[2] / step_seconds.len() as f64,
                "clip_and_adamw": phase_seconds[3] / step_seconds.len() as f64,
            },
        })
    );
}
