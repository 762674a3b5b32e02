//! Injected faults: a NaN loss or an infinite gradient stops the run with a message naming the
//! step and leaves the last checkpoint byte-for-byte as it was, or is skipped when
//! `skip_nonfinite_steps` is set; a tokenizer larger than the model's embedding is refused.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use orpo_data::{DataConfig, PreferenceDataset, PreferenceTokenizer};
use orpo_model::{DecoderConfig, DecoderForCausalLM};
use orpo_train::{CausalLm, OrpoConfig, OrpoTrainer, read_metrics};

mod common;
use common::root;

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The hidden states are NaN: a NaN loss (and gradient).
    NanHidden,
    /// The hidden states are unchanged but their gradient is scaled by 1e60: a finite loss and
    /// an infinite gradient norm.
    InfGradient,
}

thread_local! {
    /// The fault and the 1-based `hidden_states` call it hits, for the test on this thread (the
    /// trainer calls the model on the caller's thread).
    static FAULT: Cell<Option<(Fault, usize)>> = const { Cell::new(None) };
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

fn inject(fault: Option<(Fault, usize)>) {
    FAULT.set(fault);
    CALLS.set(0);
}

/// `DecoderForCausalLM` with a fault injected into its forward pass.
#[derive(Module, Debug)]
struct FaultyLm {
    inner: DecoderForCausalLM,
}

impl CausalLm for FaultyLm {
    fn hidden_states(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2>) -> Tensor<3> {
        let hidden = self.inner.forward_hidden(input_ids, attention_mask);
        let call = CALLS.get() + 1;
        CALLS.set(call);
        match FAULT.get() {
            Some((Fault::NanHidden, at)) if at == call => hidden.mul_scalar(f32::NAN),
            Some((Fault::InfGradient, at)) if at == call => {
                // Zero in the forward pass, a 1e60 factor on the gradient in the backward pass.
                let zero = hidden.clone() - hidden.clone().detach();
                hidden + zero.mul_scalar(1e30).mul_scalar(1e30)
            }
            _ => hidden,
        }
    }

    fn output_head(&self) -> (Tensor<2>, Option<Tensor<1>>) {
        CausalLm::output_head(&self.inner)
    }

    fn vocab_size(&self) -> usize {
        CausalLm::vocab_size(&self.inner)
    }

    fn save_pretrained(&self, dir: &Path, dtype: orpo_model::SaveDtype) -> anyhow::Result<()> {
        CausalLm::save_pretrained(&self.inner, dir, dtype)
    }

    fn load_pretrained(dir: &Path, device: &Device) -> anyhow::Result<Self> {
        Ok(Self {
            inner: <DecoderForCausalLM as CausalLm>::load_pretrained(dir, device)?,
        })
    }
}

/// A fresh tiny model saved to `dir` (every run starts from the same weights).
fn initial_model(dir: &Path, vocab_size: Option<usize>) {
    let device = Device::flex();
    device.seed(3);
    let mut text =
        std::fs::read_to_string(root().join("tests/fixtures/tiny-model/config.json")).unwrap();
    if let Some(v) = vocab_size {
        text = text.replace("\"vocab_size\": 512", &format!("\"vocab_size\": {v}"));
    }
    let config = DecoderConfig::from_json_str(&text, Path::new("config.json")).unwrap();
    DecoderForCausalLM::init(&config, &device)
        .save_pretrained(dir, orpo_model::SaveDtype::F32)
        .unwrap();
}

fn config(out: &Path, max_steps: i64) -> OrpoConfig {
    OrpoConfig {
        output_dir: out.display().to_string(),
        learning_rate: 1e-2,
        per_device_train_batch_size: 4,
        max_steps,
        logging_steps: 1,
        save_steps: 2,
        max_length: 64,
        max_prompt_length: 48,
        ..Default::default()
    }
}

fn trainer(init: &Path, config: OrpoConfig) -> anyhow::Result<OrpoTrainer<FaultyLm>> {
    let device = Device::flex().autodiff();
    let model = FaultyLm {
        inner: DecoderForCausalLM::from_pretrained(init, &device).unwrap(),
    };
    let tok_dir = root().join("datasets/arith-prefs/tokenizer");
    let tokenizer = PreferenceTokenizer::from_dir(&tok_dir).unwrap();
    let data = PreferenceDataset::load(
        root().join("datasets/arith-prefs-chat"),
        Some("test"),
        &DataConfig::default(),
    )
    .unwrap();
    Ok(OrpoTrainer::new(model, config, data, tokenizer)?
        .with_tokenizer_dir(tok_dir)
        .quiet(true))
}

/// Every file under `dir` (relative path → bytes).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            for (rel, bytes) in snapshot(&path) {
                out.insert(Path::new(path.file_name().unwrap()).join(rel), bytes);
            }
        } else {
            out.insert(
                PathBuf::from(path.file_name().unwrap()),
                std::fs::read(&path).unwrap(),
            );
        }
    }
    out
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Trains 4 steps cleanly (checkpoint-4), then resumes towards 8 with `fault` on the first
/// forward pass of the resumed run (step 5): returns the error and checks that checkpoint-4 is
/// byte-for-byte unchanged and nothing new was written.
fn fault_after_checkpoint(fault: Fault) -> String {
    let init = tempfile::tempdir().unwrap();
    initial_model(init.path(), None);
    let out = tempfile::tempdir().unwrap();
    inject(None);
    trainer(init.path(), config(out.path(), 4))
        .unwrap()
        .train()
        .unwrap();
    std::fs::remove_dir_all(out.path().join("final")).unwrap();
    let checkpoint = out.path().join("checkpoint-4");
    let before = snapshot(&checkpoint);
    let listing = entries(out.path());

    inject(Some((fault, 1)));
    let err = trainer(init.path(), config(out.path(), 8))
        .unwrap()
        .resume(true)
        .train()
        .unwrap_err();
    inject(None);
    assert_eq!(
        snapshot(&checkpoint),
        before,
        "checkpoint-4 must be untouched"
    );
    assert_eq!(entries(out.path()), listing, "nothing new in output_dir");
    format!("{err:#}")
}

#[test]
fn nan_loss_stops_naming_the_step_and_keeps_the_checkpoint() {
    let err = fault_after_checkpoint(Fault::NanHidden);
    assert!(
        err.contains("step 5") && err.contains("non-finite loss") && err.contains("NaN"),
        "{err}"
    );
    assert!(err.contains("skip_nonfinite_steps"), "{err}");
}

#[test]
fn infinite_gradient_stops_naming_the_step_and_keeps_the_checkpoint() {
    let err = fault_after_checkpoint(Fault::InfGradient);
    assert!(
        err.contains("step 5") && err.contains("non-finite gradient norm"),
        "{err}"
    );
}

#[test]
fn nonfinite_steps_are_skipped_when_configured() {
    let init = tempfile::tempdir().unwrap();
    initial_model(init.path(), None);
    let out = tempfile::tempdir().unwrap();
    let skipping = OrpoConfig {
        skip_nonfinite_steps: true,
        ..config(out.path(), 6)
    };
    // Step 3 has a NaN loss.
    inject(Some((Fault::NanHidden, 3)));
    let mut t = trainer(init.path(), skipping).unwrap();
    let summary = t.train().unwrap();
    inject(None);
    assert_eq!((summary.global_step, summary.skipped_steps), (6, 1));
    let metrics = read_metrics(&out.path().join("metrics.jsonl")).unwrap();
    let steps: Vec<usize> = metrics.iter().map(|e| e.step).collect();
    assert_eq!(steps, [1, 2, 4, 5, 6], "the skipped step logs nothing");
    assert!(
        metrics
            .iter()
            .all(|e| e.values.values().all(|v| v.is_finite()))
    );
    for file in ["checkpoint-6/model.safetensors", "final/model.safetensors"] {
        assert!(out.path().join(file).is_file(), "{file}");
    }
    let final_model =
        DecoderForCausalLM::from_pretrained(out.path().join("final"), &Device::flex())
            .unwrap()
            .hf_tensors()
            .unwrap();
    assert!(
        final_model
            .iter()
            .all(|t| t.values.iter().all(|v| v.is_finite()))
    );

    let out = tempfile::tempdir().unwrap();
    let skipping = OrpoConfig {
        skip_nonfinite_steps: true,
        ..config(out.path(), 6)
    };
    // Step 5 has an infinite gradient.
    inject(Some((Fault::InfGradient, 5)));
    let summary = trainer(init.path(), skipping).unwrap().train().unwrap();
    inject(None);
    assert_eq!(summary.skipped_steps, 1);
}

#[test]
fn tokenizer_larger_than_the_embedding_is_refused() {
    let init = tempfile::tempdir().unwrap();
    initial_model(init.path(), Some(256));
    let out = tempfile::tempdir().unwrap();
    let err = match trainer(init.path(), config(out.path(), 2)) {
        Ok(_) => panic!("a 512-token tokenizer on a 256-row embedding must be refused"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("512") && err.contains("256") && err.contains("embedding"),
        "{err}"
    );
}

#[test]
fn output_dir_with_a_run_is_reused_only_when_asked() {
    let init = tempfile::tempdir().unwrap();
    initial_model(init.path(), None);
    let out = tempfile::tempdir().unwrap();
    inject(None);
    trainer(init.path(), config(out.path(), 2))
        .unwrap()
        .train()
        .unwrap();
    let err = trainer(init.path(), config(out.path(), 2))
        .unwrap()
        .train()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already holds a run") && err.contains("--resume"),
        "{err}"
    );
    let overwrite = OrpoConfig {
        overwrite_output_dir: true,
        ..config(out.path(), 2)
    };
    let summary = trainer(init.path(), overwrite).unwrap().train().unwrap();
    assert_eq!(summary.global_step, 2);
}
