//! `gradient_checkpointing` and the float-type keys act through the device
//! (`orpo_train::training_device`): checkpointing changes memory, never the numbers; a model on a
//! device that does not match the config is refused with a message saying how to build it.

use std::path::Path;

use burn::tensor::Device;
use orpo_data::{DataConfig, PreferenceDataset, PreferenceTokenizer};
use orpo_model::DecoderForCausalLM;
use orpo_train::{
    BatchOrder, LogEntry, OrpoConfig, OrpoTrainer, SchedulerType, read_metrics, training_device,
};

mod common;

use common::root;

fn config(out: &Path, gradient_checkpointing: bool) -> OrpoConfig {
    OrpoConfig {
        output_dir: out.display().to_string(),
        learning_rate: 1e-3,
        lr_scheduler_type: SchedulerType::Constant,
        per_device_train_batch_size: 4,
        max_steps: 4,
        beta: 0.5,
        max_length: 64,
        max_prompt_length: 32,
        logging_steps: 1,
        save_steps: 0,
        train_sampling_strategy: BatchOrder::Sequential,
        gradient_checkpointing,
        ..Default::default()
    }
}

fn trainer(config: OrpoConfig, device: &Device) -> anyhow::Result<OrpoTrainer<DecoderForCausalLM>> {
    let fixture = root().join("tests/fixtures/train");
    let model = DecoderForCausalLM::from_pretrained(fixture.join("model"), device).unwrap();
    let tokenizer =
        PreferenceTokenizer::from_dir(root().join("datasets/arith-prefs/tokenizer")).unwrap();
    let data =
        PreferenceDataset::load(fixture.join("pairs.jsonl"), None, &DataConfig::default()).unwrap();
    Ok(OrpoTrainer::new(model, config, data, tokenizer)?.quiet(true))
}

fn run(gradient_checkpointing: bool, out: &Path) -> Vec<LogEntry> {
    let config = config(out, gradient_checkpointing);
    let device = training_device(Device::flex(), &config).unwrap();
    assert_eq!(
        device.gradient_checkpointing_strategy(),
        Some(if gradient_checkpointing {
            burn::tensor::GradientCheckpointingStrategy::Balanced
        } else {
            burn::tensor::GradientCheckpointingStrategy::Disabled
        })
    );
    trainer(config, &device).unwrap().train().unwrap();
    read_metrics(&out.join("metrics.jsonl")).unwrap()
}

#[test]
fn gradient_checkpointing_changes_no_number() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = run(false, &tmp.path().join("plain"));
    let checkpointed = run(true, &tmp.path().join("checkpointed"));
    assert_eq!(plain.len(), 4);
    assert_eq!(plain.len(), checkpointed.len());
    for (a, b) in plain.iter().zip(&checkpointed) {
        for key in [
            "loss",
            "nll_loss",
            "log_odds_ratio",
            "grad_norm",
            "logps/rejected",
        ] {
            let (x, y) = (a.values[key], b.values[key]);
            assert!(
                (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                "step {} {key}: {x} without checkpointing, {y} with",
                a.step
            );
        }
    }
}

#[test]
fn a_device_without_checkpointing_is_refused_when_the_config_asks_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let err = trainer(config(tmp.path(), true), &Device::flex().autodiff())
        .err()
        .expect("a plain autodiff device must be refused")
        .to_string();
    assert!(
        err.contains("gradient_checkpointing") && err.contains("training_device"),
        "{err}"
    );
}

#[test]
fn an_f32_model_is_refused_when_the_config_asks_for_bf16() {
    let tmp = tempfile::tempdir().unwrap();
    let config = OrpoConfig {
        bf16: true,
        ..config(tmp.path(), false)
    };
    let err = trainer(config, &Device::flex().autodiff())
        .err()
        .expect("f32 weights under `bf16: true` must be refused")
        .to_string();
    assert!(err.contains("bf16") && err.contains("F32"), "{err}");
}

#[test]
fn a_model_off_autodiff_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let err = trainer(config(tmp.path(), false), &Device::flex())
        .err()
        .expect("a model without autodiff cannot train")
        .to_string();
    assert!(err.contains("autodiff"), "{err}");
}
