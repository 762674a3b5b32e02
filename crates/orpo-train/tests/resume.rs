//! A run resumed from a step checkpoint ends exactly where the uninterrupted run ends.

use std::path::Path;

use burn::tensor::Device;
use orpo_data::{DataConfig, PreferenceDataset, PreferenceTokenizer};
use orpo_model::DecoderForCausalLM;
use orpo_train::{OrpoConfig, OrpoTrainer, read_metrics};

mod common;
use common::{initial_model, root};

fn trainer(out: &Path, init: &Path, resume: bool) -> OrpoTrainer<DecoderForCausalLM> {
    let device = Device::flex().autodiff();
    let model = DecoderForCausalLM::from_pretrained(init, &device).unwrap();
    let tok_dir = root().join("datasets/arith-prefs/tokenizer");
    let tokenizer = PreferenceTokenizer::from_dir(&tok_dir).unwrap();
    let data = PreferenceDataset::load(
        root().join("datasets/arith-prefs-chat"),
        Some("test"),
        &DataConfig::default(),
    )
    .unwrap();
    let config = OrpoConfig {
        output_dir: out.display().to_string(),
        learning_rate: 1e-2,
        per_device_train_batch_size: 4,
        gradient_accumulation_steps: 2,
        max_steps: 6,
        warmup_steps: 2,
        weight_decay: 0.01,
        logging_steps: 1,
        save_steps: 3,
        max_length: 64,
        max_prompt_length: 48,
        ..Default::default()
    };
    OrpoTrainer::new(model, config, data, tokenizer)
        .unwrap()
        .with_tokenizer_dir(tok_dir)
        .resume(resume)
        .quiet(true)
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

#[test]
fn resumed_run_reaches_the_same_weights_and_metrics() {
    let init = tempfile::tempdir().unwrap();
    initial_model(init.path());
    let a = tempfile::tempdir().unwrap();
    trainer(a.path(), init.path(), false).train().unwrap();

    let b = tempfile::tempdir().unwrap();
    trainer(b.path(), init.path(), false).train().unwrap();
    // Pretend the run died after checkpoint-3: drop what came later.
    std::fs::remove_dir_all(b.path().join("checkpoint-6")).unwrap();
    std::fs::remove_dir_all(b.path().join("final")).unwrap();
    // Without --resume an existing run is refused.
    let err = trainer(b.path(), init.path(), false)
        .train()
        .unwrap_err()
        .to_string();
    assert!(err.contains("already holds a run"), "{err}");
    trainer(b.path(), init.path(), true).train().unwrap();

    assert_eq!(
        weights(&a.path().join("final")),
        weights(&b.path().join("final"))
    );
    let ma = read_metrics(&a.path().join("metrics.jsonl")).unwrap();
    let mb = read_metrics(&b.path().join("metrics.jsonl")).unwrap();
    assert_eq!(
        ma, mb,
        "metrics after resume must equal the uninterrupted run's"
    );
    assert_eq!(ma.len(), 6);
    assert!(ma.iter().all(|e| e.values["loss"].is_finite()));
}

#[test]
fn outputs_are_hf_layout_with_tokenizer_and_plots() {
    let init = tempfile::tempdir().unwrap();
    initial_model(init.path());
    let out = tempfile::tempdir().unwrap();
    let summary = trainer(out.path(), init.path(), false).train().unwrap();
    assert_eq!(summary.global_step, 6);
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(
            out.path().join("final").join(file).is_file(),
            "final/{file}"
        );
    }
    for file in [
        "metrics.jsonl",
        "metrics.csv",
        "config.yaml",
        "plots/loss.svg",
        "plots/logps.svg",
    ] {
        assert!(out.path().join(file).is_file(), "{file}");
    }
    // The final model reloads.
    DecoderForCausalLM::from_pretrained(out.path().join("final"), &Device::flex()).unwrap();
}
