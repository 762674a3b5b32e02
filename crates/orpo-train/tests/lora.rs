//! LoRA runs (`use_peft: true`): only the adapters change and hold optimizer state; checkpoints
//! hold the PEFT adapter and resume exactly; `final/` is the adapter, `final-merged/` the
//! merged model, which computes what base + adapter compute.
//!
//! One test function: the runs draw fresh adapters and dropout masks from the device's
//! process-global RNG, which parallel tests would disturb.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Int, Tensor};
use orpo_data::{DataConfig, PreferenceDataset, PreferenceTokenizer};
use orpo_model::lora::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use orpo_model::{DecoderForCausalLM, LoraConfig};
use orpo_train::{LoraExport, LoraTargetModules, OrpoConfig, OrpoTrainer, read_metrics};

mod common;
use common::{initial_model, root};

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

#[test]
fn lora_run_trains_adapters_only_resumes_and_exports() {
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
    assert!(
        adapters
            .iter()
            .filter(|t| t.name.contains("lora_B"))
            .all(|t| t.values.iter().any(|v| *v != 0.0)),
        "every B moved away from its zero initialisation"
    );

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
    let b = tempfile::tempdir().unwrap();
    trainer(b.path(), init.path(), false).train().unwrap();
    std::fs::remove_dir_all(b.path().join("checkpoint-4")).unwrap();
    std::fs::remove_dir_all(b.path().join("final")).unwrap();
    std::fs::remove_dir_all(b.path().join("final-merged")).unwrap();
    trainer(b.path(), init.path(), true).train().unwrap();
    for file in [ADAPTER_WEIGHTS, ADAPTER_CONFIG] {
        assert!(
            bytes(&final_dir.join(file)) == bytes(&b.path().join("final").join(file)),
            "{file} differs after resume"
        );
    }
    let (ma, mb) = (
        read_metrics(&a.path().join("metrics.jsonl")).unwrap(),
        read_metrics(&b.path().join("metrics.jsonl")).unwrap(),
    );
    assert_eq!(ma, mb);
}
