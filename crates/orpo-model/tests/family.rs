//! Logit parity with transformers 5.25 for Qwen3, SmolLM3 and sliding-window Mistral
//! (`scripts/make_family_fixtures.py`: right- and left-padded batches of 12 tokens, window 4) and
//! for Gemma 2, Gemma 3 (text) and Phi-3 / Phi-4-mini
//! (`scripts/make_family_fixtures_gemma_phi.py`; Phi-3 also at a length within its original
//! context, where LongRoPE takes the short factors) on tiny checkpoints, the terms that make each family differ shown to matter, save → load round trips
//! in transformers' layout, KV-cached decoding through the sliding window, and the error for an
//! unsupported family.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use orpo_model::{DecoderConfig, DecoderForCausalLM, KvCache, SaveDtype};
use serde_json::Value;

const TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/model")
        .join(name)
}

struct Batch {
    padding: String,
    ids: Vec<Vec<i64>>,
    mask: Vec<Vec<i64>>,
    logits: Vec<Vec<Vec<f32>>>,
}

fn batches(name: &str) -> Vec<Batch> {
    let text = std::fs::read_to_string(fixture(name).join("expected.json")).unwrap();
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

/// Largest |Δlogit| over the non-padding positions of one batch.
fn max_logit_error(model: &DecoderForCausalLM, batch: &Batch, device: &Device) -> f32 {
    let (rows, cols) = (batch.ids.len(), batch.ids[0].len());
    let ids =
        Tensor::<2, Int>::from_data(TensorData::new(batch.ids.concat(), [rows, cols]), device);
    let mask: Vec<f32> = batch.mask.concat().iter().map(|&m| m as f32).collect();
    let mask = Tensor::<2>::from_data(TensorData::new(mask, [rows, cols]), device);
    let logits = model.forward_logits(ids, mask);
    let vocab = logits.dims()[2];
    let got = logits
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
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

/// The worst |Δlogit| over all batches of `name`, each batch within the tolerance.
fn check(name: &str, model: &DecoderForCausalLM, device: &Device) {
    let all = batches(name);
    assert!(all.iter().any(|b| b.padding == "left") && all.iter().any(|b| b.padding == "right"));
    for batch in &all {
        let err = max_logit_error(model, batch, device);
        assert!(
            err <= TOLERANCE,
            "{name} ({} padding): max |Δlogit| = {err:e}",
            batch.padding
        );
    }
}

/// Asserts that the `model.safetensors` saved in `saved` holds, byte for byte, the tensors
/// transformers wrote to the fixture `name` (names, shapes, values); returns their names.
fn assert_same_tensors(name: &str, saved: &Path) -> Vec<String> {
    let ours = std::fs::read(saved.join("model.safetensors")).unwrap();
    let theirs = std::fs::read(fixture(name).join("model.safetensors")).unwrap();
    let ours = safetensors::SafeTensors::deserialize(&ours).unwrap();
    let theirs = safetensors::SafeTensors::deserialize(&theirs).unwrap();
    let mut names = ours.names();
    names.sort();
    let mut want = theirs.names();
    want.sort();
    assert_eq!(names, want, "{name}");
    for n in &names {
        assert_eq!(
            ours.tensor(n).unwrap().data(),
            theirs.tensor(n).unwrap().data(),
            "{name}: {n}"
        );
    }
    names.into_iter().map(String::from).collect()
}

fn load(name: &str, device: &Device) -> DecoderForCausalLM {
    DecoderForCausalLM::from_pretrained(fixture(name), device).unwrap()
}

#[test]
fn qwen3_matches_transformers() {
    let device = Device::flex();
    let model = load("qwen3", &device);
    assert!(model.config.quirks.qk_norm);
    assert_eq!(model.config.head_dim, 16); // not hidden 32 / 4 heads
    assert_eq!(
        model.config.quirks.layer_windows,
        [None, Some(4), Some(4)],
        "layer_types: full, sliding, sliding"
    );
    check("qwen3", &model, &device);
}

#[test]
fn smollm3_matches_transformers() {
    let device = Device::flex();
    let model = load("smollm3", &device);
    assert_eq!(model.config.quirks.rope_layers, [true, false, true]);
    check("smollm3", &model, &device);
}

#[test]
fn mistral_sliding_window_matches_transformers() {
    let device = Device::flex();
    let model = load("mistral_sw", &device);
    assert_eq!(model.config.quirks.layer_windows, [Some(4), Some(4)]);
    check("mistral_sw", &model, &device);
}

/// Dropping any family term moves the logits past ten times the tolerance, so the parity tests
/// above cannot pass with a term left out.
#[test]
fn each_quirk_changes_the_logits() {
    let device = Device::flex();
    let worst = |name: &str, model: &DecoderForCausalLM| {
        batches(name)
            .iter()
            .map(|b| max_logit_error(model, b, &device))
            .fold(0.0f32, f32::max)
    };
    let mut failures = Vec::new();
    let mut expect_change = |what: &str, name: &str, edit: &dyn Fn(&mut DecoderForCausalLM)| {
        let mut model = load(name, &device);
        edit(&mut model);
        let err = worst(name, &model);
        if err <= 10.0 * TOLERANCE {
            failures.push(format!("{name} without {what}: {err:e}"));
        }
    };
    expect_change("the q/k norms", "qwen3", &|m| {
        m.layers.iter_mut().for_each(|l| {
            l.self_attn.q_norm = None;
            l.self_attn.k_norm = None;
        })
    });
    expect_change("the sliding window", "qwen3", &|m| {
        m.layers.iter_mut().for_each(|l| l.window = None)
    });
    expect_change("the NoPE layer", "smollm3", &|m| {
        m.layers
            .iter_mut()
            .for_each(|l| l.self_attn.use_rope = true)
    });
    expect_change("the sliding window", "mistral_sw", &|m| {
        m.layers.iter_mut().for_each(|l| l.window = None)
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn save_then_load_keeps_tensors_config_and_logits() {
    let device = Device::flex();
    for (name, must_have) in [
        (
            "qwen3",
            vec![
                "model.layers.0.self_attn.q_norm.weight",
                "model.layers.2.self_attn.k_norm.weight",
                "lm_head.weight",
            ],
        ),
        ("smollm3", vec!["model.layers.1.self_attn.q_proj.weight"]),
        ("mistral_sw", vec!["lm_head.weight"]),
    ] {
        let model = load(name, &device);
        let out = tempfile::tempdir().unwrap();
        model.save_pretrained(out.path(), SaveDtype::F32).unwrap();
        let names = assert_same_tensors(name, out.path());
        for n in must_have {
            assert!(names.iter().any(|x| x == n), "{name}: {n} missing");
        }
        // The config keeps what transformers reads the family by.
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(out.path().join("config.json")).unwrap())
                .unwrap();
        let original: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture(name).join("config.json")).unwrap(),
        )
        .unwrap();
        for key in [
            "architectures",
            "model_type",
            "layer_types",
            "no_rope_layers",
            "sliding_window",
            "use_sliding_window",
            "max_window_layers",
            "tie_word_embeddings",
        ] {
            assert_eq!(written.get(key), original.get(key), "{name}: {key}");
        }
        // `head_dim` is written even where the original left it implied (SmolLM3), with the
        // value transformers derives.
        assert_eq!(
            written["head_dim"], model.config.head_dim,
            "{name}: head_dim"
        );
        let reloaded = DecoderForCausalLM::from_pretrained(out.path(), &device).unwrap();
        assert_eq!(reloaded.config.quirks, model.config.quirks, "{name}");
        check(name, &reloaded, &device);
    }
}

/// Decoding one token at a time through the KV cache gives the full pass's logits, the window
/// (4) masking cached keys as it masks them in the full pass (10 tokens > 4).
#[test]
fn cached_steps_equal_full_sequence_through_the_window() {
    let device = Device::flex();
    for name in ["qwen3", "smollm3", "mistral_sw"] {
        let model = load(name, &device);
        let ids: Vec<i64> = vec![4, 9, 22, 31, 7, 50, 13, 3, 41, 17];
        let n = ids.len();
        let full_ids = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, n]), &device);
        let full = model.forward_logits(full_ids, Tensor::ones([1, n], &device));
        let mut cache = KvCache::default();
        let head = Tensor::<2, Int>::from_data(TensorData::new(ids[..3].to_vec(), [1, 3]), &device);
        model.forward_with_cache(head, Tensor::ones([1, 3], &device), Some(&mut cache));
        for (step, &id) in ids.iter().enumerate().skip(3) {
            let one = Tensor::<2, Int>::from_data(TensorData::new(vec![id], [1, 1]), &device);
            let hidden = model.forward_with_cache(
                one,
                Tensor::ones([1, step + 1], &device),
                Some(&mut cache),
            );
            let got = model.logits(hidden);
            let want = full.clone().narrow(1, step, 1);
            let diff = (got - want).abs().max().into_scalar::<f32>();
            assert!(diff <= 1e-5, "{name} step {step}: {diff:e}");
        }
    }
}

#[test]
fn an_unsupported_family_lists_the_supported_ones() {
    let err = DecoderConfig::from_json_str(
        r#"{"architectures":["FalconForCausalLM"],"model_type":"falcon","hidden_size":8}"#,
        "config.json".as_ref(),
    )
    .unwrap_err()
    .to_string();
    for family in ["falcon", "llama", "qwen3", "smollm3", "gemma2", "phi3"] {
        assert!(err.contains(family), "{err}");
    }
}

// Gemma 2, Gemma 3 (text) and Phi-3 (scripts/make_family_fixtures_gemma_phi.py).

fn parity(name: &str) {
    let device = Device::flex();
    let model = DecoderForCausalLM::from_pretrained(fixture(name), &device).unwrap();
    check(name, &model, &device);
}

#[test]
fn gemma2_matches_transformers() {
    parity("gemma2");
}

#[test]
fn gemma3_matches_transformers() {
    parity("gemma3");
}

#[test]
fn phi3_longrope_partial_rotary_matches_transformers() {
    let batches = batches("phi3");
    // Both LongRoPE factor sets are exercised: 12 > original context 8 ≥ 6.
    let lens: Vec<usize> = batches.iter().map(|b| b.ids[0].len()).collect();
    assert_eq!(lens, [12, 12, 6, 6]);
    parity("phi3");
}

/// Every family term matters on these fixtures: dropping one moves the logits past the
/// tolerance (so the parity tests above cannot pass with a term left out).
#[test]
fn each_gemma_phi_quirk_changes_the_logits() {
    let device = Device::flex();
    let load = |name: &str| DecoderForCausalLM::from_pretrained(fixture(name), &device).unwrap();
    let worst = |name: &str, model: &DecoderForCausalLM| {
        batches(name)
            .iter()
            .map(|b| max_logit_error(model, b, &device))
            .fold(0.0f32, f32::max)
    };
    let mut failures = Vec::new();
    let mut expect_change = |what: &str, name: &str, edit: &dyn Fn(&mut DecoderForCausalLM)| {
        let mut model = load(name);
        edit(&mut model);
        let err = worst(name, &model);
        if err <= 10.0 * TOLERANCE {
            failures.push(format!("{name} without {what}: {err:e}"));
        }
    };
    expect_change("the attention soft-cap", "gemma2", &|m| {
        m.layers.iter_mut().for_each(|l| l.self_attn.softcap = None)
    });
    expect_change("the final soft-cap", "gemma2", &|m| {
        m.config.quirks.final_logit_softcap = None
    });
    expect_change("the sliding window", "gemma2", &|m| {
        m.layers.iter_mut().for_each(|l| l.window = None)
    });
    expect_change("query_pre_attn_scalar", "gemma2", &|m| {
        m.layers
            .iter_mut()
            .for_each(|l| l.self_attn.query_scale = None)
    });
    expect_change("the sliding window", "gemma3", &|m| {
        m.layers.iter_mut().for_each(|l| l.window = None)
    });
    expect_change("the local RoPE", "gemma3", &|m| {
        m.layers.iter_mut().for_each(|l| l.local_rope = false)
    });
    expect_change("the q/k norms", "gemma3", &|m| {
        m.layers.iter_mut().for_each(|l| {
            l.self_attn.q_norm = None;
            l.self_attn.k_norm = None;
        })
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn save_then_load_keeps_logits_and_transformers_names() {
    let device = Device::flex();
    for (name, must_have, must_not_have) in [
        (
            "phi3",
            vec![
                "model.layers.0.self_attn.qkv_proj.weight",
                "model.layers.1.mlp.gate_up_proj.weight",
            ],
            vec!["model.layers.0.self_attn.q_proj.weight", "lm_head.weight"],
        ),
        (
            "gemma2",
            vec![
                "model.layers.0.pre_feedforward_layernorm.weight",
                "model.layers.0.post_feedforward_layernorm.weight",
                "model.layers.0.post_attention_layernorm.weight",
            ],
            vec!["lm_head.weight"],
        ),
        (
            "gemma3",
            vec![
                "model.layers.2.self_attn.q_norm.weight",
                "model.layers.2.self_attn.k_norm.weight",
            ],
            vec![],
        ),
    ] {
        let model = DecoderForCausalLM::from_pretrained(fixture(name), &device).unwrap();
        let out = tempfile::tempdir().unwrap();
        model.save_pretrained(out.path(), SaveDtype::F32).unwrap();
        let names = assert_same_tensors(name, out.path());
        for n in must_have {
            assert!(names.iter().any(|x| x == n), "{name}: {n} missing");
        }
        for n in must_not_have {
            assert!(!names.iter().any(|x| x == n), "{name}: {n} written");
        }
        // The config keeps what transformers reads the family by, as the Hub's config spells
        // it (`check_roundtrip.py` loads such a save with transformers).
        let read = |dir: &Path| -> Value {
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap()
        };
        let (written, original) = (read(out.path()), read(&fixture(name)));
        for key in [
            "architectures",
            "model_type",
            "hidden_act",
            "hidden_activation",
            "query_pre_attn_scalar",
            "attn_logit_softcapping",
            "final_logit_softcapping",
            "sliding_window",
            "sliding_window_pattern",
            "rope_theta",
            "rope_local_base_freq",
            "rope_scaling",
            "partial_rotary_factor",
            "original_max_position_embeddings",
            "tie_word_embeddings",
        ] {
            assert_eq!(written.get(key), original.get(key), "{name}: {key}");
        }
        // `head_dim` is written even where the original left it implied (Phi-3).
        assert_eq!(written["head_dim"], model.config.head_dim, "{name}");
        let reloaded = DecoderForCausalLM::from_pretrained(out.path(), &device).unwrap();
        assert_eq!(reloaded.config.quirks, model.config.quirks, "{name}");
        check(name, &reloaded, &device);
    }
}

/// Decoding one token at a time through the KV cache gives the full pass's logits, with the
/// sliding window (4) masking cached keys as it masks them in the full pass.
#[test]
fn gemma_phi_cached_steps_equal_full_sequence_through_the_window() {
    let device = Device::flex();
    for name in ["gemma2", "gemma3"] {
        let model = DecoderForCausalLM::from_pretrained(fixture(name), &device).unwrap();
        let ids: Vec<i64> = vec![4, 9, 22, 31, 7, 50, 13, 3, 41, 17];
        let n = ids.len();
        let full_ids = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, n]), &device);
        let full = model.forward_logits(full_ids, Tensor::ones([1, n], &device));
        let mut cache = KvCache::default();
        let head = Tensor::<2, Int>::from_data(TensorData::new(ids[..3].to_vec(), [1, 3]), &device);
        model.forward_with_cache(head, Tensor::ones([1, 3], &device), Some(&mut cache));
        for (step, &id) in ids.iter().enumerate().skip(3) {
            let one = Tensor::<2, Int>::from_data(TensorData::new(vec![id], [1, 1]), &device);
            let hidden = model.forward_with_cache(
                one,
                Tensor::ones([1, step + 1], &device),
                Some(&mut cache),
            );
            let got = model.logits(hidden);
            let want = full.clone().narrow(1, step, 1);
            let diff = (got - want).abs().max().into_scalar::<f32>();
            assert!(diff <= 1e-5, "{name} step {step}: {diff:e}");
        }
    }
}
