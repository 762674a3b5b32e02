//! One config, every backend compiled in: a few training steps of a small pretrained model give
//! the same losses on the CPU backend (`flex`) and on WGPU, within 1e-3.
//!
//! Built only with `--features wgpu` (and `cpu`). CI runs it on lavapipe, Mesa's software Vulkan
//! driver (`.ci/run`):
//!
//!     cargo test -p orpo-cli --no-default-features --features cpu,wgpu --test backends
//!
//! The first test loads its model from a fixture; the second initialises a fresh one from a
//! config, which `orpo train` draws on the CPU backend and moves to the device, so both backends
//! start from the same weights (each backend's own random numbers differ).
#![cfg(feature = "wgpu")]

mod common;

use common::orpo;
use serde_json::Value;
use std::path::Path;

/// The fixture model of the trajectory tests instead of the demo's fresh one.
const FIXTURE_MODEL: [&str; 4] = [
    "--set",
    "model_name_or_path=tests/fixtures/train/model",
    "--set",
    "model_config=null",
];

/// Trains 6 steps of the demo config (with `extra` settings) on `device` and returns the logged
/// rows of `metrics.jsonl`.
fn train_on(device: &str, out: &Path, extra: &[&str]) -> Vec<Value> {
    let output_dir = format!("output_dir={}", out.display());
    let mut args = vec![
        "train",
        "--device",
        device,
        "--config",
        "configs/demo.yaml",
        "--set",
        &output_dir,
        "--set",
        "per_device_train_batch_size=4",
        "--set",
        "max_steps=6",
        "--set",
        "logging_steps=1",
        "--set",
        "eval_steps=3",
        "--set",
        "max_eval_samples=8",
        "--set",
        "save_steps=1000",
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = orpo(&args);
    assert_eq!(code, 0, "training on {device} failed:\n{err}");
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn wgpu_trains_like_the_cpu_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let cpu = train_on("cpu", &tmp.path().join("cpu"), &FIXTURE_MODEL);
    let wgpu = train_on("wgpu", &tmp.path().join("wgpu"), &FIXTURE_MODEL);
    assert_same_run(&cpu, &wgpu);
}

#[test]
fn a_fresh_model_starts_from_the_same_weights_on_every_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let cpu = train_on("cpu", &tmp.path().join("cpu"), &[]);
    let wgpu = train_on("wgpu", &tmp.path().join("wgpu"), &[]);
    assert_same_run(&cpu, &wgpu);
}

/// Every logged value of the two runs within 1e-3 (relative, or absolute below 1).
fn assert_same_run(cpu: &[Value], wgpu: &[Value]) {
    assert_eq!(cpu.len(), wgpu.len(), "not the same rows logged");
    let keys = [
        "loss",
        "nll_loss",
        "log_odds_ratio",
        "logps/chosen",
        "logps/rejected",
        "grad_norm",
        "eval_loss",
        "eval_logps/chosen",
        "eval_logps/rejected",
    ];
    let mut compared = 0;
    let mut worst = (0.0f64, String::new());
    for (c, w) in cpu.iter().zip(wgpu) {
        assert_eq!(c["step"], w["step"]);
        for key in keys {
            let (Some(a), Some(b)) = (c[key].as_f64(), w[key].as_f64()) else {
                assert_eq!(
                    c[key].is_null(),
                    w[key].is_null(),
                    "{key} at step {}",
                    c["step"]
                );
                continue;
            };
            let tolerance = 1e-3 * a.abs().max(1.0);
            if (a - b).abs() / a.abs().max(1.0) > worst.0 {
                worst = (
                    (a - b).abs() / a.abs().max(1.0),
                    format!("{key} at step {}", c["step"]),
                );
            }
            assert!(
                (a - b).abs() <= tolerance && b.is_finite(),
                "{key} at step {}: cpu {a}, wgpu {b}",
                c["step"]
            );
            compared += 1;
        }
    }
    // 6 training rows (6 keys each) and 2 evaluations (3 keys each) at the least.
    assert!(compared >= 6 * 6 + 2 * 3, "only {compared} values compared");
    eprintln!(
        "{compared} values compared; largest difference {:.1e} ({})",
        worst.0, worst.1
    );
}
