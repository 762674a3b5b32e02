//! Trajectory parity with TRL: the same 20-step ORPO run as TRL's `ORPOTrainer` (fixture written
//! by `scripts/make_train_fixtures.py`: tiny random Llama, 80 arithmetic pairs, AdamW lr 1e-3,
//! constant schedule, batch 4, sequential order, f32) gives every step's loss within 1e-3
//! relative of TRL's, and the other logged metrics within the tolerances below.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use orpo_model::DecoderForCausalLM;
use orpo_train::tokenize_config;
use serde_json::Value;

mod common;

use common::{config, f, fixture, fixture_data, train_and_read_metrics, u};

fn rel_err(ours: f64, theirs: f64) -> f64 {
    (ours - theirs).abs() / theirs.abs().max(f64::MIN_POSITIVE)
}

/// Per-tensor L2 norms of a safetensors file, by tensor name.
fn tensor_norms(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let (tensors, _) = orpo_train::io::read_safetensors(path).unwrap();
    tensors.into_iter().collect()
}

fn l2(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt()
}

/// Each metric must lie within `rel` relative or `abs` absolute of TRL's. Measured: about
/// 5e-7 relative on every metric, 2e-5 on `grad_norm` (docs/training-parity.md); the bounds
/// leave room for another summation order. The metrics that are differences of two nearly equal
/// numbers (chosen and rejected completions of these pairs differ in one or two tokens, so
/// `rewards/margins` is ~1e-3) get an absolute tolerance: their relative error says nothing.
const METRIC_TOLERANCES: [(&str, f64, f64); 11] = [
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

/// The training device: `flex` unless `ORPO_TEST_DEVICE` names another backend built in with this
/// crate's `wgpu` or `cuda` feature (how the trajectory is checked on a GPU, scripts/gpu_checks.sh).
fn device() -> Device {
    let device = match std::env::var("ORPO_TEST_DEVICE").as_deref() {
        Err(_) | Ok("cpu") | Ok("flex") => Device::flex(),
        #[cfg(feature = "wgpu")]
        Ok("wgpu") => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        #[cfg(feature = "cuda")]
        Ok("cuda") => Device::cuda(0),
        Ok(other) => panic!("ORPO_TEST_DEVICE={other}: not a backend this test was built with"),
    };
    device.autodiff()
}

#[test]
fn twenty_steps_follow_trls_trajectory() {
    let (dir, fx) = fixture();
    let settings = &fx["settings"];
    let steps = fx["steps"].as_array().unwrap();
    let device = device();
    let model = DecoderForCausalLM::from_pretrained(dir.join("model"), &device).unwrap();
    let (tokenizer, data) = fixture_data(&dir);
    let out = tempfile::tempdir().unwrap();
    let cfg = config(settings, out.path());

    // Tokenization: the same ids and prompt lengths (label masks) as TRL's tokenize_row.
    let (pairs, report) = data.tokenize(&tokenizer, &tokenize_config(&cfg)).unwrap();
    let expected = fx["tokenized"].as_array().unwrap();
    assert_eq!(pairs.len(), expected.len(), "{report:?}");
    assert_eq!(report.truncated, 0);
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    for (i, (p, e)) in pairs.iter().zip(expected).enumerate() {
        assert_eq!(p.chosen_ids, ids(&e["chosen_input_ids"]), "row {i} chosen");
        assert_eq!(
            p.rejected_ids,
            ids(&e["rejected_input_ids"]),
            "row {i} rejected"
        );
        assert_eq!(p.chosen_prompt_len, u(e, "chosen_prompt_len"), "row {i}");
        assert_eq!(
            p.rejected_prompt_len,
            u(e, "rejected_prompt_len"),
            "row {i}"
        );
    }

    let logged = train_and_read_metrics(model, cfg, data, tokenizer);
    assert_eq!(logged.len(), steps.len(), "one log line per step");

    let mut table = String::from("step  loss(ours)  loss(TRL)  rel.err\n");
    let mut worst_loss = (0.0f64, 0usize);
    let mut worst: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for (entry, trl) in logged.iter().zip(steps) {
        let step = u(trl, "step");
        assert_eq!(entry.step, step);
        let (ours, theirs) = (entry.values["loss"], f(trl, "loss"));
        let e = rel_err(ours, theirs);
        table.push_str(&format!("{step:4}  {ours:.7}  {theirs:.7}  {e:.2e}\n"));
        if e > worst_loss.0 {
            worst_loss = (e, step);
        }
        assert!(
            (entry.values["learning_rate"] - f(trl, "learning_rate")).abs() < 1e-12,
            "step {step}: learning rate"
        );
        for (name, rel, abs) in METRIC_TOLERANCES {
            let (ours, theirs) = (entry.values[name], f(trl, name));
            let diff = (ours - theirs).abs();
            let e = if rel > 0.0 {
                rel_err(ours, theirs)
            } else {
                diff
            };
            let w = worst.entry(name).or_default();
            if e > w.0 {
                *w = (e, step);
            }
            if diff > abs && (rel == 0.0 || rel_err(ours, theirs) > rel) {
                failures.push(format!(
                    "step {step} {name}: ours {ours:.7e}, TRL {theirs:.7e}"
                ));
            }
        }
        // The share of pairs with λ·lc > λ·lr: the per-pair margins are far above the
        // numerical noise of the two runs, so this must match exactly.
        let (ours, theirs) = (
            entry.values["rewards/accuracies"],
            f(trl, "rewards/accuracies"),
        );
        if (ours - theirs).abs() > 1e-6 {
            failures.push(format!(
                "step {step} rewards/accuracies: ours {ours}, TRL {theirs}"
            ));
        }
    }
    let mut summary = format!(
        "worst loss relative error {:.2e} (step {})\n",
        worst_loss.0, worst_loss.1
    );
    for (name, rel, _) in METRIC_TOLERANCES {
        let (e, step) = worst[name];
        let kind = if rel > 0.0 { "relative" } else { "absolute" };
        summary.push_str(&format!(
            "worst {name} {kind} error {e:.2e} (step {})\n",
            step
        ));
    }
    eprintln!("{table}{summary}");
    assert!(
        worst_loss.0 <= 1e-3,
        "loss differs from TRL's by more than 1e-3 relative: {summary}\n{table}"
    );
    assert!(failures.is_empty(), "{}\n{summary}", failures.join("\n"));

    // The weights after 20 steps: per-tensor norms of the final weights and of the total update.
    let initial = tensor_norms(&dir.join("model/model.safetensors"));
    let fin = tensor_norms(&out.path().join("final/model.safetensors"));
    let mut worst_update = (0.0f64, String::new());
    for (name, expected) in fx["update_norms"].as_object().unwrap() {
        let (a, b) = (&fin[name], &initial[name]);
        let update: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        let e = rel_err(l2(&update), expected.as_f64().unwrap());
        let ew = rel_err(l2(a), fx["final_weight_norms"][name].as_f64().unwrap());
        assert!(
            ew < 1e-5,
            "{name}: final weight norm differs by {ew:.2e} relative"
        );
        if e > worst_update.0 {
            worst_update = (e, name.clone());
        }
    }
    eprintln!(
        "worst relative error of a tensor's total update norm: {:.2e} ({})",
        worst_update.0, worst_update.1
    );
    assert!(
        worst_update.0 < 1e-4,
        "update of {} differs from TRL's by {:.2e} relative",
        worst_update.1,
        worst_update.0
    );
}
