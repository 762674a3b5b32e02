//! Trajectory parity with TRL for the model families beyond Llama: the 10-step ORPO run of
//! TRL 1.16's `ORPOTrainer` on each family's tiny checkpoint (`tests/fixtures/model/<family>/
//! trajectory/`, written by `scripts/make_family_fixtures.py` and
//! `scripts/make_family_fixtures_gemma_phi.py`: vocabulary 512 = the bundled tokenizer's, the
//! first 40 pairs of `tests/fixtures/train/pairs.jsonl`, AdamW lr 1e-3, constant schedule, batch
//! 4, sequential order, f32). Every step's loss and metrics within 1e-4 relative of TRL's (the
//! near-zero differences `rewards/margins` and `log_odds_chosen` absolutely), the logged
//! `grad_norm` within 1e-4, and each tensor's total update within 1e-4 of TRL's by L2 norm. The
//! scripts check that TRL tokenizes the rows as the Llama fixture records, which
//! tests/trl_trajectory.rs checks against ours.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use orpo_model::DecoderForCausalLM;
use serde_json::Value;

mod common;

use common::{config, f, fixture_data, root, train_and_read_metrics, u};

fn rel_err(ours: f64, theirs: f64) -> f64 {
    (ours - theirs).abs() / theirs.abs().max(f64::MIN_POSITIVE)
}

fn l2(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt()
}

/// Per-tensor values of a safetensors file, by tensor name.
fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let (tensors, _) = orpo_train::io::read_safetensors(path).unwrap();
    tensors.into_iter().collect()
}

/// `(metric, relative tolerance, absolute tolerance)`: a metric passes within either.
const METRIC_TOLERANCES: [(&str, f64, f64); 12] = [
    ("loss", 1e-4, 0.0),
    ("nll_loss", 1e-4, 0.0),
    ("logps/chosen", 1e-4, 0.0),
    ("logps/rejected", 1e-4, 0.0),
    ("rewards/chosen", 1e-4, 0.0),
    ("rewards/rejected", 1e-4, 0.0),
    ("log_odds_ratio", 1e-4, 0.0),
    ("logits/chosen", 1e-4, 1e-6),
    ("logits/rejected", 1e-4, 1e-6),
    ("rewards/margins", 0.0, 1e-6),
    ("log_odds_chosen", 0.0, 1e-5),
    ("grad_norm", 1e-4, 0.0),
];

fn trajectory(name: &str) {
    let dir = root()
        .join("tests/fixtures/model")
        .join(name)
        .join("trajectory");
    let text = std::fs::read_to_string(dir.join("trajectory.json")).unwrap();
    let fx: Value = serde_json::from_str(&text).unwrap();
    let settings = &fx["settings"];
    let steps = fx["steps"].as_array().unwrap();
    let rows = u(settings, "rows");
    assert_eq!(
        rows,
        u(settings, "max_steps") * u(settings, "per_device_train_batch_size")
    );
    let device = Device::flex().autodiff();
    let model = DecoderForCausalLM::from_pretrained(dir.join("model"), &device).unwrap();
    assert_eq!(model.config.model_type, read_model_type(&dir));
    // The trainer reads the rows in order: the run sees the first `rows` pairs, as TRL's did.
    let (tokenizer, data) = fixture_data(&root().join("tests/fixtures/train"));
    let out = tempfile::tempdir().unwrap();
    let cfg = config(settings, out.path());
    let logged = train_and_read_metrics(model, cfg, data, tokenizer);
    compare_steps(name, &logged, steps);

    let initial = tensors(&dir.join("model/model.safetensors"));
    let fin = tensors(&out.path().join("final/model.safetensors"));
    compare_updates(name, &fx, &initial, &fin);
}

/// Every step's loss, metrics and grad_norm against TRL's ([`METRIC_TOLERANCES`]).
fn compare_steps(name: &str, logged: &[orpo_train::LogEntry], steps: &[Value]) {
    assert_eq!(logged.len(), steps.len(), "{name}: one log line per step");
    let mut failures = Vec::new();
    let mut worst: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for (entry, trl) in logged.iter().zip(steps) {
        let step = u(trl, "step");
        assert_eq!(entry.step, step);
        for (metric, rel, abs) in METRIC_TOLERANCES {
            let (ours, theirs) = (entry.values[metric], f(trl, metric));
            let diff = (ours - theirs).abs();
            let e = if rel > 0.0 {
                rel_err(ours, theirs)
            } else {
                diff
            };
            let w = worst.entry(metric).or_default();
            if e > w.0 {
                *w = (e, step);
            }
            if diff > abs && (rel == 0.0 || rel_err(ours, theirs) > rel) {
                failures.push(format!(
                    "{name} step {step} {metric}: ours {ours:.7e}, TRL {theirs:.7e}"
                ));
            }
        }
        let (ours, theirs) = (
            entry.values["rewards/accuracies"],
            f(trl, "rewards/accuracies"),
        );
        if (ours - theirs).abs() > 1e-6 {
            failures.push(format!(
                "{name} step {step} rewards/accuracies: ours {ours}, TRL {theirs}"
            ));
        }
    }
    eprintln!("{name}: worst (error, step) per metric {worst:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each tensor's total update (L2 norm, 1e-4 relative) and final norm (1e-5) against TRL's.
fn compare_updates(
    name: &str,
    fx: &Value,
    initial: &BTreeMap<String, Vec<f32>>,
    fin: &BTreeMap<String, Vec<f32>>,
) {
    let expected_tensors = fx["update_norms"].as_object().unwrap();
    assert!(!expected_tensors.is_empty());
    for (tensor, expected) in expected_tensors {
        let (a, b) = (&fin[tensor], &initial[tensor]);
        let update: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        let e = rel_err(l2(&update), expected.as_f64().unwrap());
        assert!(e < 1e-4, "{name} {tensor}: update norm differs by {e:.2e}");
        let ew = rel_err(l2(a), fx["final_weight_norms"][tensor].as_f64().unwrap());
        assert!(ew < 1e-5, "{name} {tensor}: final norm differs by {ew:.2e}");
    }
}

fn read_model_type(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("model/config.json")).unwrap();
    let config: Value = serde_json::from_str(&text).unwrap();
    config["model_type"].as_str().unwrap().to_string()
}

#[test]
fn qwen3_follows_trls_trajectory() {
    trajectory("qwen3");
}

#[test]
fn smollm3_follows_trls_trajectory() {
    trajectory("smollm3");
}

#[test]
fn mistral_sliding_window_follows_trls_trajectory() {
    trajectory("mistral_sw");
}

#[test]
fn gemma2_follows_trls_trajectory() {
    trajectory("gemma2");
}

#[test]
fn gemma3_follows_trls_trajectory() {
    trajectory("gemma3");
}

#[test]
fn phi3_follows_trls_trajectory() {
    trajectory("phi3");
}

/// `family`'s tiny model with a PEFT `all-linear` LoRA follows TRL + PEFT's 10 steps
/// (`tests/fixtures/lora/<family>_trajectory/`, written by
/// `scripts/make_family_lora_trajectory.py`): the run starts from PEFT's adapter on the frozen
/// base, every step's loss, metrics and grad_norm are TRL's ([`METRIC_TOLERANCES`]), and the
/// final adapter's tensors (PEFT's names) moved as PEFT's did ([`compare_updates`]).
///
/// `final-merged/` holds W + scale·B·A in transformers' layout for each of the
/// `layers × modules.len()` adapted projections (`modules`: the model's target modules in its
/// own order), with A `[r, in]` and B `[out, r]` as PEFT saves them: for Phi-3's fused
/// `qkv_proj` / `gate_up_proj` that is the trained shared A (not the untrained copies the split
/// parts keep) and B's rows of every part. Weights without an adapter are unchanged.
fn lora_trajectory(family: &str, modules: &[&str], layers: usize) {
    let name = format!("{family} LoRA");
    let dir = root()
        .join("tests/fixtures/lora")
        .join(format!("{family}_trajectory"));
    let text = std::fs::read_to_string(dir.join("trajectory.json")).unwrap();
    let fx: Value = serde_json::from_str(&text).unwrap();
    let settings = &fx["settings"];
    let steps = fx["steps"].as_array().unwrap();
    let device = Device::flex().autodiff();
    let model = DecoderForCausalLM::from_pretrained(dir.join("model"), &device)
        .unwrap()
        .load_adapter(dir.join("adapter"))
        .unwrap();
    assert_eq!(model.config.model_type, read_model_type(&dir));
    assert_eq!(model.lora_config().unwrap().target_modules, modules);
    let (tokenizer, data) = fixture_data(&root().join("tests/fixtures/train"));
    let out = tempfile::tempdir().unwrap();
    let cfg = orpo_train::OrpoConfig {
        lora_export: orpo_train::LoraExport::Both,
        ..config(settings, out.path())
    };
    let logged = train_and_read_metrics(model, cfg, data, tokenizer);
    compare_steps(&name, &logged, steps);
    let initial = tensors(&dir.join("adapter/adapter_model.safetensors"));
    let fin = tensors(&out.path().join("final/adapter_model.safetensors"));
    assert_eq!(
        fin.keys().collect::<Vec<_>>(),
        initial.keys().collect::<Vec<_>>()
    );
    assert_eq!(fin.len(), layers * modules.len() * 2, "{name}: (A, B) each");
    compare_updates(&name, &fx, &initial, &fin);

    let base = tensors(&dir.join("model/model.safetensors"));
    let merged = tensors(&out.path().join("final-merged/model.safetensors"));
    let (r, scale) = (4, 8.0 / 4.0);
    let mut checked = 0;
    for (key, w) in &base {
        let Some(module) = key.strip_suffix(".weight") else {
            assert_eq!(&merged[key], w, "{name} {key}: not adapted, unchanged");
            continue;
        };
        let prefix = format!("base_model.model.{module}");
        let (Some(a), Some(b)) = (
            fin.get(&format!("{prefix}.lora_A.weight")),
            fin.get(&format!("{prefix}.lora_B.weight")),
        ) else {
            assert_eq!(&merged[key], w, "{name} {key}: not adapted, unchanged");
            continue;
        };
        let (d_in, d_out) = (a.len() / r, b.len() / r);
        assert_eq!(w.len(), d_out * d_in, "{name} {key}");
        let worst = (0..d_out * d_in)
            .map(|i| {
                let (o, c) = (i / d_in, i % d_in);
                let delta: f32 = (0..r).map(|k| b[o * r + k] * a[k * d_in + c]).sum();
                (merged[key][i] - (w[i] + scale * delta)).abs()
            })
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-5, "{name} {key}: merged differs by {worst:e}");
        checked += 1;
    }
    assert_eq!(
        checked,
        layers * modules.len(),
        "{name}: every adapted projection"
    );
}

/// Phi-3's fused `qkv_proj` / `gate_up_proj` adapters (one A shared by the split parts, B sliced
/// by output rows) train as PEFT's single adapter on the fused weight.
#[test]
fn phi3_lora_follows_trl_peft_trajectory() {
    lora_trajectory(
        "phi3",
        &["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
        2,
    );
}

/// Qwen3 (per-head q/k norms after the adapted q/k projections, sliding window on layers 1-2,
/// untied head) with adapters on its seven projections.
#[test]
fn qwen3_lora_follows_trl_peft_trajectory() {
    lora_trajectory("qwen3", SEVEN, 3);
}

/// Gemma 2 (attention and final soft-caps, sliding window on even layers, `1 + w` norms, tied
/// head) with adapters on its seven projections.
#[test]
fn gemma2_lora_follows_trl_peft_trajectory() {
    lora_trajectory("gemma2", SEVEN, 2);
}

/// The `all-linear` target modules of a family with separate projections, in the model's order.
const SEVEN: &[&str] = &[
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];
