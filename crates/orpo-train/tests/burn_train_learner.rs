//! The burn-train learner trains as `OrpoTrainer` does: the same ten steps of the TRL
//! trajectory fixture (tiny Llama, constant lr 1e-3, no clipping, dataset order, batch 4, one
//! CPU device; weight decay 0.01 so that the no-decay group of biases and norms matters) through
//! burn-train's `SupervisedTraining` / `Learner` and through `OrpoTrainer` log the same losses
//! within 1e-5 relative and end with the same weights within 1e-5. A third run with another
//! learning rate on the learner's side must differ by more, so that the comparison can fail.
#![cfg(feature = "burn-train")]

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use orpo_model::DecoderForCausalLM;
use orpo_train::learner::{LearnerRunOptions, train_with_burn_train};
use orpo_train::{LogEntry, OrpoConfig, read_metrics, tokenize_config};

mod common;

use common::{config, fixture, fixture_data, train_and_read_metrics};

const STEPS: usize = 10;

fn settings(out: &Path) -> OrpoConfig {
    let (_, fx) = fixture();
    OrpoConfig {
        max_steps: STEPS as i64,
        max_grad_norm: 0.0,
        weight_decay: 0.01,
        ..config(&fx["settings"], out)
    }
}

fn model(dir: &Path) -> DecoderForCausalLM {
    DecoderForCausalLM::from_pretrained(dir.join("model"), &Device::flex().autodiff()).unwrap()
}

/// Trains through burn-train's learner; returns the logged metrics.
fn learner_run(cfg: OrpoConfig) -> Vec<LogEntry> {
    let (dir, _) = fixture();
    let (tokenizer, data) = fixture_data(&dir);
    let (pairs, _) = data.tokenize(&tokenizer, &tokenize_config(&cfg)).unwrap();
    let out = Path::new(&cfg.output_dir).to_path_buf();
    let options = LearnerRunOptions {
        quiet: true,
        ..Default::default()
    };
    let summary = train_with_burn_train(
        model(&dir),
        &cfg,
        pairs,
        Vec::new(),
        tokenizer.padding_id(),
        options,
    )
    .unwrap();
    assert_eq!(summary.global_step, STEPS);
    read_metrics(&out.join("metrics.jsonl")).unwrap()
}

fn weights(out: &Path) -> BTreeMap<String, Vec<f32>> {
    let (tensors, _) =
        orpo_train::io::read_safetensors(&out.join("final/model.safetensors")).unwrap();
    tensors.into_iter().collect()
}

/// The largest relative difference of the per-step losses.
fn worst_loss(a: &[LogEntry], b: &[LogEntry]) -> f64 {
    assert_eq!(a.len(), b.len(), "one log line per step on both sides");
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            assert_eq!(x.step, y.step);
            let (p, q) = (x.values["loss"], y.values["loss"]);
            (p - q).abs() / q.abs()
        })
        .fold(0.0, f64::max)
}

/// The largest absolute difference of a weight, over every tensor.
fn worst_weight(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) -> f64 {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same tensors"
    );
    a.iter()
        .flat_map(|(name, x)| x.iter().zip(&b[name]))
        .map(|(x, y)| (x - y).abs() as f64)
        .fold(0.0, f64::max)
}

#[test]
fn ten_steps_through_burn_train_equal_the_default_loop() {
    let (dir, _) = fixture();
    let a = tempfile::tempdir().unwrap();
    let (tokenizer, data) = fixture_data(&dir);
    let trainer = train_and_read_metrics(model(&dir), settings(a.path()), data, tokenizer);
    assert_eq!(trainer.len(), STEPS);

    let b = tempfile::tempdir().unwrap();
    let learner = learner_run(settings(b.path()));
    let loss = worst_loss(&learner, &trainer);
    let weight = worst_weight(&weights(b.path()), &weights(a.path()));
    eprintln!("burn-train vs OrpoTrainer: loss {loss:.2e} relative, weights {weight:.2e}");
    assert!(loss <= 1e-5, "losses differ by {loss:.2e} relative");
    assert!(weight <= 1e-5, "weights differ by {weight:.2e}");
    // TRL's other metrics come through burn-train's metrics too.
    for name in [
        "nll_loss",
        "rewards/chosen",
        "logps/rejected",
        "log_odds_ratio",
        "grad_norm",
    ] {
        for (x, y) in learner.iter().zip(&trainer) {
            let (p, q) = (x.values[name], y.values[name]);
            assert!(
                (p - q).abs() <= 1e-5 * q.abs().max(1e-3),
                "step {} {name}: burn-train {p}, OrpoTrainer {q}",
                x.step
            );
        }
    }
    // The learner wrote burn-train's own logs under TRL's names, and its epoch checkpoint.
    assert!(b.path().join("train/epoch-1/rewards/chosen.log").is_file());
    assert!(b.path().join("checkpoint").is_dir());

    // The comparison can fail: a learning rate 10% higher on one side moves both.
    let c = tempfile::tempdir().unwrap();
    let cfg = settings(c.path());
    let other = learner_run(OrpoConfig {
        learning_rate: cfg.learning_rate * 1.1,
        ..cfg
    });
    let loss = worst_loss(&other, &trainer);
    let weight = worst_weight(&weights(c.path()), &weights(a.path()));
    assert!(
        loss > 1e-5 && weight > 1e-5,
        "another learning rate should differ: loss {loss:.2e}, weights {weight:.2e}"
    );
}
