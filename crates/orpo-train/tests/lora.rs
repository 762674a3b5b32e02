//! LoRA runs (`use_peft: true`): only the adapters change and hold optimizer state; checkpoints
//! hold the PEFT adapter and resume exactly (the Llama fixture, and Phi-3 with its fused
//! `qkv_proj` / `gate_up_proj` adapters); `final/` is the adapter, `final-merged/` the merged
//! model, which computes what base + adapter compute.
//!
//! The tests hold [`RNG`] while they train: the runs draw fresh adapters and dropout masks from
//! the device's process-global RNG, which a parallel run would disturb.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use burn::tensor::{Device, Int, Tensor};
use orpo_data::{DataConfig, PreferenceDataset, PreferenceTokenizer};
use orpo_model::lora::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use orpo_model::tensor_file::HostTensor;
use orpo_model::{DecoderForCausalLM, LoraConfig};
use orpo_train::{LoraExport, LoraTargetModules, OrpoConfig, OrpoTrainer, read_metrics};

mod common;
use common::{initial_model, root};

/// Held by each test of this file while it trains (see the module docs).
static RNG: Mutex<()> = Mutex::new(());

fn rng_lock() -> MutexGuard<'static, ()> {
    // A failed test poisons the lock; the others still run, one at a time.
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A 4-step `use_peft` run (all-linear, r 4, alpha 8, dropout 0.1, AdamW with weight decay,
/// a checkpoint every 2 steps) from the model in `init`, writing to `out`.
fn trainer(out: &Path, init: &Path, resume: bool) -> OrpoTrainer<DecoderForCausalLM> {
    let device = Device::flex().autodiff();
    device.seed(11);
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
        model_name_or_path: Some(init.display().to_string()),
        learning_rate: 2e-2,
        per_device_train_batch_size: 4,
        max_steps: 4,
        weight_decay: 0.01,
        logging_steps: 1,
        save_steps: 2,
        max_length: 64,
        max_prompt_length: 48,
        use_peft: true,
        lora_r: 4,
        lora_alpha: 8.0,
        lora_dropout: 0.1,
        lora_target_modules: Some(LoraTargetModules::One("all-linear".into())),
        lora_export: LoraExport::Both,
        ..Default::default()
    };
    OrpoTrainer::new(model, config, data, tokenizer)
        .unwrap()
        .with_tokenizer_dir(tok_dir)
        .resume(resume)
        .quiet(true)
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn tensor_names(path: &Path) -> Vec<String> {
    let data = bytes(path);
    let st = safetensors::SafeTensors::deserialize(&data).unwrap();
    st.names().into_iter().map(String::from).collect()
}

fn logits(model: &DecoderForCausalLM, device: &Device) -> Vec<f32> {
    let ids = Tensor::<2, Int>::from_ints([[5, 9, 17, 3, 40, 2], [7, 1, 30, 12, 0, 0]], device);
    let mask = Tensor::<2>::from_floats(
        [
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            [1.0, 1.0, 1.0, 1.0, 0.0, 0.0],
        ],
        device,
    );
    model
        .forward_logits(ids, mask)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// PEFT starts every `lora_B` at zero: after training, each one has moved.
fn assert_every_lora_b_moved(adapters: &[HostTensor]) {
    assert!(
        adapters
            .iter()
            .filter(|t| t.name.contains("lora_B"))
            .all(|t| t.values.iter().any(|v| *v != 0.0)),
        "every B moved away from its zero initialisation"
    );
}

/// Trains [`trainer`]'s run into a fresh directory, stops it after `checkpoint-2` (its later
/// checkpoint and final exports removed) and resumes it: the final adapter, the merged model
/// and every logged metric are those of the uninterrupted run in `done`, bit for bit. The
/// adapters' AdamW moments come back from `checkpoint-2/optimizer.safetensors` and the dropout
/// masks from the per-step seed, or the last two steps would differ.
fn assert_resume_matches(init: &Path, done: &Path) {
    let b = tempfile::tempdir().unwrap();
    trainer(b.path(), init, false).train().unwrap();
    std::fs::remove_dir_all(b.path().join("checkpoint-4")).unwrap();
    std::fs::remove_dir_all(b.path().join("final")).unwrap();
    std::fs::remove_dir_all(b.path().join("final-merged")).unwrap();
    let summary = trainer(b.path(), init, true).train().unwrap();
    assert_eq!(summary.global_step, 4);
    for file in [
        format!("final/{ADAPTER_WEIGHTS}"),
        format!("final/{ADAPTER_CONFIG}"),
        "final-merged/model.safetensors".to_string(),
    ] {
        assert!(
            bytes(&done.join(&file)) == bytes(&b.path().join(&file)),
            "{file} differs after resume"
        );
    }
    let (ma, mb) = (
        read_metrics(&done.join("metrics.jsonl")).unwrap(),
        read_metrics(&b.path().join("metrics.jsonl")).unwrap(),
    );
    assert_eq!(ma.len(), 4);
    assert_eq!(ma, mb);
}

#[test]
fn lora_run_trains_adapters_only_resumes_and_exports() {
    let _rng = rng_lock();
    let init = tempfile::tempdir().unwrap();
    initial_model(init.path());
    let a = tempfile::tempdir().unwrap();
    let mut run = trainer(a.path(), init.path(), false);
    let summary = run.train().unwrap();
    assert_eq!(summary.global_step, 4);

    // Only the adapters changed: the base weights are bit-identical to the initial model.
    let device = Device::flex();
    let trained = run.model().clone();
    let lora = trained.lora_config().unwrap().clone();
    assert_eq!(lora.target_modules.len(), 7);
    let base = DecoderForCausalLM::from_pretrained(init.path(), &device).unwrap();
    let base_tensors: BTreeMap<_, _> = base
        .hf_tensors()
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.values))
        .collect();
    for t in trained.clone().without_lora().hf_tensors().unwrap() {
        assert!(base_tensors[&t.name] == t.values, "{} changed", t.name);
    }
    let adapters = trained.adapter_tensors().unwrap();
    assert_eq!(adapters.len(), trained.layers.len() * 7 * 2); // layers × 7 × (A, B)
    assert_every_lora_b_moved(&adapters);

    // Checkpoints hold the adapter and the optimizer state of the adapters only.
    let ckpt = a.path().join("checkpoint-2");
    assert!(ckpt.join(ADAPTER_CONFIG).is_file() && ckpt.join(ADAPTER_WEIGHTS).is_file());
    assert!(!ckpt.join("model.safetensors").exists());
    let moments = tensor_names(&ckpt.join("optimizer.safetensors"));
    assert_eq!(moments.len(), adapters.len() * 2);
    assert!(
        moments
            .iter()
            .all(|n| n.contains(".lora.a.") || n.contains(".lora.b.")),
        "{moments:?}"
    );

    // final/: a PEFT adapter directory (+ tokenizer); final-merged/: the merged model.
    let final_dir = a.path().join("final");
    assert_eq!(summary.final_model_dir, final_dir);
    assert!(
        final_dir.join(ADAPTER_WEIGHTS).is_file() && final_dir.join("tokenizer.json").is_file()
    );
    assert!(!final_dir.join("model.safetensors").exists());
    let config = LoraConfig::from_adapter_dir(&final_dir).unwrap();
    assert_eq!(
        config.base_model_name_or_path.as_deref(),
        Some(&*init.path().display().to_string())
    );
    assert_eq!((config.r, config.alpha, config.dropout), (4, 8.0, 0.1));
    let merged_dir = a.path().join("final-merged");
    let merged = DecoderForCausalLM::from_pretrained(&merged_dir, &device).unwrap();
    let adapted = DecoderForCausalLM::from_pretrained(init.path(), &device)
        .unwrap()
        .load_adapter(&final_dir)
        .unwrap();
    let (want, got) = (logits(&adapted, &device), logits(&merged, &device));
    assert!(
        max_diff(&want, &got) <= 1e-4,
        "merged export vs base + adapter"
    );
    assert!(
        max_diff(&want, &logits(&base, &device)) > 1e-3,
        "the adapter matters"
    );

    // Interrupted after checkpoint-2 and resumed: the same adapters and metrics, bit for bit.
    assert_resume_matches(init.path(), a.path());
}

/// Phi-3's fused projections (`tests/fixtures/lora/phi3_trajectory/model`): PEFT's one adapter
/// per fused `qkv_proj` / `gate_up_proj` is here one A shared by the split parts (q, k, v; gate,
/// up) and B sliced by output rows. A checkpoint holds PEFT's fused tensors and the moments of
/// the parameters that train, and a resumed run ends where the uninterrupted one does.
#[test]
fn phi3_fused_lora_run_resumes_exactly() {
    let _rng = rng_lock();
    let init = root().join("tests/fixtures/lora/phi3_trajectory/model");
    let a = tempfile::tempdir().unwrap();
    let mut run = trainer(a.path(), &init, false);
    assert_eq!(run.train().unwrap().global_step, 4);
    let trained = run.model().clone();
    assert_eq!(
        trained.lora_config().unwrap().target_modules,
        ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    );
    let adapters = trained.adapter_tensors().unwrap();
    let mut names: Vec<_> = adapters.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    let mut want = Vec::new();
    for layer in 0..2 {
        for module in [
            "mlp.down_proj",
            "mlp.gate_up_proj",
            "self_attn.o_proj",
            "self_attn.qkv_proj",
        ] {
            for factor in ["A", "B"] {
                want.push(format!(
                    "base_model.model.model.layers.{layer}.{module}.lora_{factor}.weight"
                ));
            }
        }
    }
    assert_eq!(names, want);
    assert_every_lora_b_moved(&adapters);

    let ckpt = a.path().join("checkpoint-2");
    assert_eq!(tensor_names(&ckpt.join(ADAPTER_WEIGHTS)).len(), want.len());
    let moments = tensor_names(&ckpt.join("optimizer.safetensors"));
    assert!(
        moments
            .iter()
            .all(|n| n.contains(".lora.a.") || n.contains(".lora.b.")),
        "{moments:?}"
    );
    // The moments of what trains, per layer: o's and down's A, each fused projection's shared A
    // (held by its first part, q_proj / gate_proj; the other parts' copies are frozen) and the
    // seven Bs (slices of the fused Bs): 11 parameters × (exp_avg, exp_avg_sq).
    assert_eq!(moments.len(), 2 * 11 * 2, "{moments:?}");
    for copy in ["self_attn.k_proj", "self_attn.v_proj", "mlp.up_proj"] {
        assert!(
            !moments
                .iter()
                .any(|n| n.contains(&format!("{copy}.weight.lora.a."))),
            "{copy}: its copy of the shared A has moments"
        );
    }
    for part in [
        "self_attn.q_proj",
        "self_attn.v_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
    ] {
        assert!(
            moments
                .iter()
                .any(|n| n.contains(&format!("layers.1.{part}.weight.lora.b."))),
            "{part}: no moments for its slice of B in {moments:?}"
        );
    }

    assert_resume_matches(&init, a.path());
}
