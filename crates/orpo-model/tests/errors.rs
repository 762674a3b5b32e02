//! Bad checkpoints give errors that name the tensor, the file and both shapes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use orpo_model::{DecoderForCausalLM, ModelError};
use safetensors::{Dtype, tensor::TensorView};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/model")
        .join(name)
}

/// Copies a fixture's tensors into `dir`, letting `edit` change the list first.
fn rewrite(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>)) {
    let src = fixture("llama_untied_mha");
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), &dir.join("model.safetensors")).unwrap();
}

fn load(dir: &Path) -> ModelError {
    DecoderForCausalLM::from_pretrained(dir, &Device::flex()).unwrap_err()
}

#[test]
fn missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    rewrite(dir.path(), |t| {
        t.retain(|(n, ..)| n != "model.layers.1.mlp.up_proj.weight")
    });
    let err = load(dir.path()).to_string();
    assert!(
        err.contains("model.layers.1.mlp.up_proj.weight") && err.contains("[48, 32]"),
        "{err}"
    );
}

#[test]
fn unexpected_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    rewrite(dir.path(), |t| {
        t.push(("model.extra.weight".into(), Dtype::F32, vec![2], vec![0; 8]))
    });
    let err = load(dir.path()).to_string();
    assert!(err.contains("model.extra.weight"), "{err}");
}

#[test]
fn wrong_shape_names_tensor_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    rewrite(dir.path(), |t| {
        let entry = t
            .iter_mut()
            .find(|(n, ..)| n == "model.norm.weight")
            .unwrap();
        entry.2 = vec![16];
        entry.3.truncate(16 * 4);
    });
    let err = load(dir.path()).to_string();
    assert!(
        err.contains("model.norm.weight") && err.contains("[16]") && err.contains("[32]"),
        "{err}"
    );
}

#[test]
fn unsupported_dtype_is_named() {
    let dir = tempfile::tempdir().unwrap();
    rewrite(dir.path(), |t| {
        let entry = t
            .iter_mut()
            .find(|(n, ..)| n == "model.norm.weight")
            .unwrap();
        entry.1 = Dtype::I32;
    });
    let err = load(dir.path()).to_string();
    assert!(
        err.contains("model.norm.weight") && err.contains("I32"),
        "{err}"
    );
}

#[test]
fn truncated_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    rewrite(dir.path(), |_| {});
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(dir.path()).to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn missing_weights_file_says_what_is_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("llama_tied_gqa").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let err = load(dir.path()).to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn unsupported_model_type_in_config_json() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("llama_tied_gqa").join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        text.replace("\"llama\"", "\"gpt_neox\""),
    )
    .unwrap();
    let err = load(dir.path()).to_string();
    assert!(
        err.contains("gpt_neox") && err.contains("llama, mistral, qwen2"),
        "{err}"
    );
}

#[test]
fn pickle_checkpoint_is_refused_never_loaded() {
    // A directory holding only a PyTorch pickle: refused, saying why and what to do.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("llama_tied_gqa").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    // Not even a valid pickle: the file must not be opened at all.
    std::fs::write(dir.path().join("pytorch_model.bin"), b"\x80\x04not read").unwrap();
    let err = load(dir.path()).to_string();
    assert!(
        err.contains("pytorch_model.bin")
            && err.contains("never loaded")
            && err.contains("safetensors"),
        "{err}"
    );
}
