//! What the trainer's integration tests share: the workspace root and the TRL trajectory
//! fixture (`scripts/make_train_fixtures.py`) with its settings as an [`OrpoConfig`].
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};

use orpo_train::{OrpoConfig, SamplingStrategy, SchedulerType};
use serde_json::Value;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fixture's directory (model, pairs) and its `trajectory.json`.
pub fn fixture() -> (PathBuf, Value) {
    let dir = root().join("tests/fixtures/train");
    let text = std::fs::read_to_string(dir.join("trajectory.json"))
        .expect("tests/fixtures/train/trajectory.json (scripts/make_train_fixtures.py)");
    (dir, serde_json::from_str(&text).unwrap())
}

pub fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("fixture: `{key}` is not a number"))
}

pub fn u(v: &Value, key: &str) -> usize {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("fixture: `{key}` is not an integer")) as usize
}

/// The fixture's settings as an [`OrpoConfig`] writing to `out`.
pub fn config(settings: &Value, out: &Path) -> OrpoConfig {
    assert_eq!(settings["lr_scheduler_type"], "constant");
    assert_eq!(settings["train_sampling_strategy"], "sequential");
    OrpoConfig {
        output_dir: out.display().to_string(),
        learning_rate: f(settings, "learning_rate"),
        lr_scheduler_type: SchedulerType::Constant,
        warmup_steps: u(settings, "warmup_steps"),
        per_device_train_batch_size: u(settings, "per_device_train_batch_size"),
        gradient_accumulation_steps: u(settings, "gradient_accumulation_steps"),
        max_steps: u(settings, "max_steps") as i64,
        weight_decay: f(settings, "weight_decay"),
        max_grad_norm: f(settings, "max_grad_norm"),
        adam_beta1: f(settings, "adam_beta1"),
        adam_beta2: f(settings, "adam_beta2"),
        adam_epsilon: f(settings, "adam_epsilon"),
        beta: f(settings, "beta"),
        max_length: u(settings, "max_length"),
        max_prompt_length: u(settings, "max_prompt_length"),
        logging_steps: u(settings, "logging_steps"),
        seed: u(settings, "seed") as u64,
        train_sampling_strategy: SamplingStrategy::Sequential,
        nll_on_completion_only: false,
        save_steps: 0,
        ..Default::default()
    }
}
