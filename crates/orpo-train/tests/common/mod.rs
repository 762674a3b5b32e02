//! What the trainer's integration tests share: the workspace root and the TRL trajectory
//! fixture (`scripts/make_train_fixtures.py`) with its settings as an [`OrpoConfig`].
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use orpo_model::{DecoderConfig, DecoderForCausalLM};
use orpo_train::{BatchOrder, OrpoConfig, SchedulerType};
use serde_json::Value;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fixture's directory (model, pairs) and its `trajectory.json`.
/// A freshly initialised tiny model saved to disk, so that every run starts from the same
/// weights whatever else the (process-global) RNG is doing in parallel tests.
pub fn initial_model(dir: &Path) {
    let device = Device::flex();
    device.seed(3);
    let config =
        DecoderConfig::from_file(root().join("tests/fixtures/tiny-model/config.json")).unwrap();
    DecoderForCausalLM::init(&config, &device)
        .save_pretrained(dir, orpo_model::SaveDtype::F32)
        .unwrap();
}

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
        train_sampling_strategy: BatchOrder::Sequential,
        nll_on_completion_only: false,
        save_steps: 0,
        ..Default::default()
    }
}

/// The bundled tokenizer and the fixture's pairs (`tests/fixtures/train/pairs.jsonl`).
pub fn fixture_data(dir: &Path) -> (orpo_data::PreferenceTokenizer, orpo_data::PreferenceDataset) {
    use orpo_data::{DataConfig, PreferenceDataset, PreferenceTokenizer};
    let tokenizer =
        PreferenceTokenizer::from_dir(root().join("datasets/arith-prefs/tokenizer")).unwrap();
    let data =
        PreferenceDataset::load(dir.join("pairs.jsonl"), None, &DataConfig::default()).unwrap();
    (tokenizer, data)
}

/// Trains `model` quietly with `cfg` and returns what it logged to `metrics.jsonl`.
pub fn train_and_read_metrics(
    model: orpo_model::DecoderForCausalLM,
    cfg: OrpoConfig,
    data: orpo_data::PreferenceDataset,
    tokenizer: orpo_data::PreferenceTokenizer,
) -> Vec<orpo_train::LogEntry> {
    let metrics = Path::new(&cfg.output_dir).join("metrics.jsonl");
    orpo_train::OrpoTrainer::new(model, cfg, data, tokenizer)
        .unwrap()
        .quiet(true)
        .train()
        .unwrap();
    orpo_train::read_metrics(&metrics).unwrap()
}

/// Trains the 20 steps of the TRL trajectory fixture with the whole model in `dtype` (`bf16` or
/// `fp16` in the config) on the CPU backend, checks the weights loaded in that type and every
/// logged loss is finite and that the loss fell, and returns the worst relative difference from
/// TRL's f32 losses. Call it once per test binary: a device's float type is set once per process.
pub fn low_precision_run(dtype: burn::tensor::FloatDType) -> f64 {
    use burn::tensor::{DType, Device, FloatDType};
    use orpo_model::DecoderForCausalLM;
    use orpo_train::training_device;

    let (dir, fx) = fixture();
    let out = tempfile::tempdir().unwrap();
    let cfg = OrpoConfig {
        bf16: dtype == FloatDType::BF16,
        fp16: dtype == FloatDType::F16,
        ..config(&fx["settings"], out.path())
    };
    assert!(Device::flex().supports_dtype(dtype));
    let device = training_device(Device::flex(), &cfg).unwrap();
    let model = DecoderForCausalLM::from_pretrained(dir.join("model"), &device).unwrap();
    let (head, _) = orpo_train::CausalLm::output_head(&model);
    assert_eq!(
        head.dtype(),
        DType::from(dtype),
        "weights load into the run's float type"
    );
    let (tokenizer, data) = fixture_data(&dir);
    // The trajectory is compared step by step, so no step may be skipped: torch's default f16
    // loss scale (2^16) overflows on this fixture's first step (a skip that
    // `fp16_overflow_skips_the_step_lowers_the_scale_and_continues` checks), so f16 starts at a
    // scale that does not.
    let metrics = Path::new(&cfg.output_dir).join("metrics.jsonl");
    let summary = orpo_train::OrpoTrainer::new(model, cfg, data, tokenizer)
        .unwrap()
        .with_loss_scaler(orpo_train::precision::LossScaler::new(256.0))
        .quiet(true)
        .train()
        .unwrap();
    assert_eq!(summary.skipped_steps, 0, "a step was skipped");
    let logged = orpo_train::read_metrics(&metrics).unwrap();
    let steps = fx["steps"].as_array().unwrap();
    assert_eq!(logged.len(), steps.len());
    let mut worst = 0.0f64;
    for (ours, trl) in logged.iter().zip(steps) {
        let (a, b) = (ours.values["loss"], f(trl, "loss"));
        assert!(a.is_finite(), "step {}: loss {a}", ours.step);
        worst = worst.max((a - b).abs() / b.abs());
    }
    // The run learned: the loss fell over the 20 steps as TRL's did.
    let first = logged.first().unwrap().values["loss"];
    let last = logged.last().unwrap().values["loss"];
    assert!(last < first, "loss {first} → {last}");
    worst
}

/// Every tensor of a safetensors file as f32 values (f32, bf16 or f16 on disk), by name, with
/// the dtype it was stored in.
pub fn read_weights(path: &Path) -> std::collections::BTreeMap<String, (String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                safetensors::Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                    .collect(),
                safetensors::Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
                other => panic!("{}: tensor `{name}` is {other:?}", path.display()),
            };
            (name, (format!("{:?}", view.dtype()), values))
        })
        .collect()
}

/// IEEE half precision bits to f32 (exact).
fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((bits >> 10) & 0x1f) as i32;
    let frac = (bits & 0x3ff) as f32;
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1.0 + frac / 1024.0) * 2f32.powi(exp - 15),
    }
}
