//! Logit parity with transformers on the tiny checkpoints of `scripts/make_model_fixtures.py`:
//! tied and untied heads, GQA and plain multi-head attention, Qwen2 biases, Mistral, llama3
//! rope scaling, a sharded checkpoint and a bf16 one, each on a right- and a left-padded batch.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use orpo_model::{DecoderForCausalLM, GenerationConfig, SaveDtype};
use serde_json::Value;

const TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/model")
        .join(name)
}

/// The backend under test: `flex` unless `ORPO_TEST_DEVICE` names another one built in with this
/// crate's `wgpu` or `cuda` feature (how the parity tests run on a GPU).
fn device() -> Device {
    match std::env::var("ORPO_TEST_DEVICE").as_deref() {
        Err(_) | Ok("cpu") | Ok("flex") => Device::flex(),
        #[cfg(feature = "wgpu")]
        Ok("wgpu") => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        #[cfg(feature = "cuda")]
        Ok("cuda") => Device::cuda(0),
        Ok(other) => panic!("ORPO_TEST_DEVICE={other}: not a backend this test was built with"),
    }
}

struct Batch {
    padding: String,
    ids: Vec<Vec<i64>>,
    mask: Vec<Vec<i64>>,
    logits: Vec<Vec<Vec<f32>>>,
}

fn batches(dir: &Path) -> Vec<Batch> {
    let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    json["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| Batch {
            padding: b["padding"].as_str().unwrap().to_string(),
            ids: serde_json::from_value(b["input_ids"].clone()).unwrap(),
            mask: serde_json::from_value(b["attention_mask"].clone()).unwrap(),
            logits: serde_json::from_value(b["logits"].clone()).unwrap(),
        })
        .collect()
}

fn to_tensors(batch: &Batch, device: &Device) -> (Tensor<2, Int>, Tensor<2>) {
    let (rows, cols) = (batch.ids.len(), batch.ids[0].len());
    let ids: Vec<i64> = batch.ids.concat();
    let mask: Vec<f32> = batch.mask.concat().iter().map(|&m| m as f32).collect();
    (
        Tensor::from_data(TensorData::new(ids, [rows, cols]), device),
        Tensor::from_data(TensorData::new(mask, [rows, cols]), device),
    )
}

/// Largest |Δlogit| over the non-padding positions.
fn max_logit_error(model: &DecoderForCausalLM, batch: &Batch, device: &Device) -> f32 {
    let (ids, mask) = to_tensors(batch, device);
    let logits = model.forward_logits(ids, mask);
    let [rows, cols, vocab] = logits.dims();
    let got = logits
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    let mut worst = 0.0f32;
    for r in 0..rows {
        for t in 0..cols {
            if batch.mask[r][t] == 0 {
                continue;
            }
            for v in 0..vocab {
                let diff = (got[(r * cols + t) * vocab + v] - batch.logits[r][t][v]).abs();
                assert!(diff.is_finite());
                worst = worst.max(diff);
            }
        }
    }
    worst
}

fn check_case(name: &str) {
    let device = device();
    let dir = fixture(name);
    let model = DecoderForCausalLM::from_pretrained(&dir, &device).unwrap();
    for batch in batches(&dir) {
        let err = max_logit_error(&model, &batch, &device);
        assert!(
            err <= TOLERANCE,
            "{name} ({} padding): max |Δlogit| = {err:e}",
            batch.padding
        );
    }
}

#[test]
fn llama_tied_gqa_matches_transformers() {
    check_case("llama_tied_gqa");
}

#[test]
fn llama_untied_multi_head_matches_transformers() {
    check_case("llama_untied_mha");
}

#[test]
fn qwen2_with_biases_matches_transformers() {
    check_case("qwen2_bias");
}

#[test]
fn mistral_matches_transformers() {
    check_case("mistral_gqa");
}

#[test]
fn llama3_rope_scaling_matches_transformers() {
    check_case("llama3_rope");
}

#[test]
fn sharded_checkpoint_matches_transformers() {
    check_case("llama_sharded");
}

#[test]
fn bf16_checkpoint_loads_into_f32_and_matches_transformers() {
    check_case("llama_bf16");
}

#[test]
fn save_then_load_gives_identical_logits_and_layout() {
    let device = device();
    for name in ["llama_tied_gqa", "qwen2_bias", "llama_sharded"] {
        let model = DecoderForCausalLM::from_pretrained(fixture(name), &device).unwrap();
        let out = tempfile::tempdir().unwrap();
        model.save_pretrained(out.path(), SaveDtype::F32).unwrap();
        let reloaded = DecoderForCausalLM::from_pretrained(out.path(), &device).unwrap();
        for batch in batches(&fixture(name)) {
            let err = max_logit_error(&reloaded, &batch, &device);
            assert!(err <= TOLERANCE, "{name} after save/load: {err:e}");
        }
        // Tied models are written as transformers writes them: no lm_head tensor.
        let bytes = std::fs::read(out.path().join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let has_head = st.names().contains(&"lm_head.weight");
        assert_eq!(has_head, !model.config.tie_word_embeddings, "{name}");
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(out.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}

#[test]
fn cached_generation_equals_full_recompute() {
    let device = device();
    let model = DecoderForCausalLM::from_pretrained(fixture("llama_tied_gqa"), &device).unwrap();
    let prompt = [5u32, 17, 33, 8, 61];
    for config in [
        GenerationConfig {
            max_new_tokens: 12,
            ..Default::default()
        },
        GenerationConfig {
            max_new_tokens: 12,
            temperature: 0.9,
            top_k: Some(20),
            top_p: Some(0.9),
            seed: 7,
            ..Default::default()
        },
    ] {
        let cached = model.generate(&prompt, &config);
        let full = model.generate_without_cache(&prompt, &config);
        assert_eq!(cached.len(), 12);
        assert_eq!(cached, full, "{config:?}");
    }
    // Generation stops on EOS (and includes it).
    let first = model.generate(
        &prompt,
        &GenerationConfig {
            max_new_tokens: 3,
            ..Default::default()
        },
    )[0];
    let stopped = model.generate(
        &prompt,
        &GenerationConfig {
            max_new_tokens: 10,
            eos_token_ids: vec![first],
            ..Default::default()
        },
    );
    assert_eq!(stopped, vec![first]);
}

#[test]
fn cached_step_logits_equal_full_sequence_logits() {
    let device = device();
    let model = DecoderForCausalLM::from_pretrained(fixture("llama3_rope"), &device).unwrap();
    let ids: Vec<i64> = vec![4, 9, 22, 31, 7, 50, 13, 3];
    let full_ids = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, 8]), &device);
    let full = model.forward_logits(full_ids, Tensor::ones([1, 8], &device));
    let mut cache = orpo_model::KvCache::default();
    let head = Tensor::<2, Int>::from_data(TensorData::new(ids[..5].to_vec(), [1, 5]), &device);
    model.forward_with_cache(head, Tensor::ones([1, 5], &device), Some(&mut cache));
    for (step, &id) in ids.iter().enumerate().skip(5) {
        let one = Tensor::<2, Int>::from_data(TensorData::new(vec![id], [1, 1]), &device);
        let hidden =
            model.forward_with_cache(one, Tensor::ones([1, step + 1], &device), Some(&mut cache));
        let got = model.logits(hidden);
        let want = full.clone().narrow(1, step, 1);
        let diff = (got - want).abs().max().into_scalar::<f32>();
        assert!(diff <= 1e-5, "step {step}: {diff:e}");
    }
}
