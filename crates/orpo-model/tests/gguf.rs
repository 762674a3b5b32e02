//! GGUF export against transformers' GGUF loader (scripts/make_gguf_fixtures.py): for f16 and
//! Q8_0, transformers loaded the file `orpo export --format gguf` wrote for
//! tests/fixtures/train/model and computed logits; here the same export is read back by our own
//! reader (dequantised, q/k un-permuted), run through our model, and must reproduce those
//! logits. That checks the bytes (names, layout, permutation, quantisation) without Python.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use orpo_model::gguf::{GgmlType, GgufCheckpoint, GgufFile, GgufType, GgufValue};
use orpo_model::{DecoderConfig, DecoderForCausalLM};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn logits(model: &DecoderForCausalLM, ids: &[i64], device: &Device) -> Vec<f32> {
    let n = ids.len();
    let input = Tensor::<2, Int>::from_data(TensorData::new(ids.to_vec(), [1, n]), device);
    let mask = Tensor::ones([1, n], device);
    model
        .forward_logits(input, mask)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn gguf_reproduces_transformers_logits() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/gguf/train_model.json")).unwrap(),
    )
    .unwrap();
    let ids: Vec<i64> = serde_json::from_value(fixture["input_ids"][0].clone()).unwrap();
    let device = Device::flex();
    let model_dir = root().join("tests/fixtures/train/model");
    let tokenizer = root().join("datasets/arith-prefs/tokenizer");
    let config = DecoderConfig::from_file(model_dir.join("config.json")).unwrap();
    let model = DecoderForCausalLM::from_pretrained(&model_dir, &device).unwrap();
    let f32_logits = logits(&model, &ids, &device);
    let out = tempfile::tempdir().unwrap();

    // (type, matrix type, bound to the f32 model this test states)
    for (ty, matrix, bound) in [
        (GgufType::F16, GgmlType::F16, 1e-2f32),
        // Measured: f16 2.1e-4, Q8_0 7.0e-3 (transformers on the same files: the fixture).
        (GgufType::Q8_0, GgmlType::Q8_0, 2e-2),
    ] {
        let name = ty.name();
        let path = out.path().join(format!("model-{name}.gguf"));
        model.save_gguf(&path, &tokenizer, ty).unwrap();

        let file = GgufFile::read(&path).unwrap();
        let get = |k: &str| file.get(k).unwrap_or_else(|| panic!("{name}: no {k}"));
        assert_eq!(get("general.architecture").as_str(), Some("llama"));
        assert_eq!(get("llama.block_count").as_u64(), Some(2));
        assert_eq!(get("llama.attention.head_count_kv").as_u64(), Some(2));
        assert_eq!(get("llama.rope.dimension_count").as_u64(), Some(16));
        assert_eq!(get("tokenizer.ggml.model").as_str(), Some("gpt2"));
        assert_eq!(get("tokenizer.ggml.pre").as_str(), Some("smollm"));
        let GgufValue::Array(tokens) = get("tokenizer.ggml.tokens") else {
            panic!("tokens are not an array");
        };
        assert_eq!(tokens.len(), 512);
        assert_eq!(tokens[2].as_str(), Some("<|im_end|>"));
        assert_eq!(get("tokenizer.ggml.eos_token_id").as_u64(), Some(2));
        // Tied head: no output.weight (llama.cpp reuses token_embd).
        assert!(file.tensor_info("output.weight").is_none());
        let info = |n: &str| {
            file.tensor_info(n)
                .unwrap_or_else(|| panic!("{name}: no {n}"))
        };
        assert_eq!(info("blk.1.attn_norm.weight").ggml_type, GgmlType::F32);
        assert_eq!(info("blk.0.ffn_down.weight").ggml_type, matrix);
        assert_eq!(info("token_embd.weight").shape, [512, 64]);
        assert_eq!(info("blk.0.attn_k.weight").shape, [32, 64]);

        let rebuilt = DecoderForCausalLM::build(
            &config,
            &mut GgufCheckpoint::open(&path, &config, &device).unwrap(),
        )
        .unwrap();
        let ours = logits(&rebuilt, &ids, &device);
        let theirs: Vec<Vec<f32>> =
            serde_json::from_value(fixture[format!("logits_{name}")].clone()).unwrap();
        let theirs = theirs.concat();
        // Same dequantised weights on both sides; the fixture is rounded to 1e-4.
        let to_transformers = max_abs_diff(&ours, &theirs);
        assert!(
            to_transformers <= 2e-4,
            "{name}: our model on our GGUF vs transformers on it: {to_transformers:e}"
        );
        let to_f32 = max_abs_diff(&ours, &f32_logits);
        assert!(
            to_f32 <= bound,
            "{name}: {to_f32:e} from the f32 model (bound {bound:e})"
        );
        assert!(to_f32 > 0.0, "{name}: the export lost no precision at all?");
    }
}

#[test]
fn sentencepiece_tokenizers_and_missing_tokenizers_are_refused_by_name() {
    let device = Device::flex();
    let model =
        DecoderForCausalLM::from_pretrained(root().join("tests/fixtures/train/model"), &device)
            .unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = model
        .save_gguf(&out.path().join("m.gguf"), out.path(), GgufType::F16)
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    std::fs::write(
        out.path().join("tokenizer.json"),
        r#"{"model": {"type": "BPE", "byte_fallback": true, "vocab": {}, "merges": []}}"#,
    )
    .unwrap();
    let err = model
        .save_gguf(&out.path().join("m.gguf"), out.path(), GgufType::Q8_0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sentencepiece") && err.contains("tokenizer.json"),
        "{err}"
    );
    assert!(!out.path().join("m.gguf").exists());

    // Families llama.cpp's llama/qwen2 metadata cannot describe are refused by name: a Mistral
    // with a sliding window (a quirk), Qwen3 (another model_type).
    let tokenizer = root().join("datasets/arith-prefs/tokenizer");
    for (fixture, expect) in [("mistral_sw", "GGUF"), ("qwen3", "qwen3")] {
        let dir = root().join("tests/fixtures/model").join(fixture);
        let model = DecoderForCausalLM::from_pretrained(dir, &device).unwrap();
        let err = model
            .save_gguf(&out.path().join("m.gguf"), &tokenizer, GgufType::F16)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{fixture}: {err}");
    }
}
