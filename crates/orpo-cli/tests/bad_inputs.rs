//! Bad inputs through the binary: each is one clear error (exit 1) naming what is at fault,
//! never a panic or an "internal error" line.

use std::path::Path;

use orpo_model::{DecoderConfig, DecoderForCausalLM, SaveDtype};

mod common;
use common::root;

/// `orpo ARGS`: exit code and stderr, which must hold no panic.
fn orpo(args: &[&str]) -> (i32, String) {
    let (code, _, err) = common::orpo(args);
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{args:?}: {err}"
    );
    (code, err)
}

/// A fresh model of the tiny config with `vocab_size` rows, and the bundled 512-token
/// tokenizer, in `dir`.
fn model_dir(dir: &Path, vocab_size: usize) {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/tiny-model/config.json")).unwrap();
    let text = text.replace(
        "\"vocab_size\": 512",
        &format!("\"vocab_size\": {vocab_size}"),
    );
    let config = DecoderConfig::from_json_str(&text, Path::new("config.json")).unwrap();
    DecoderForCausalLM::init(&config, &burn::tensor::Device::default())
        .save_pretrained(dir, SaveDtype::F32)
        .unwrap();
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(
            root().join("datasets/arith-prefs/tokenizer").join(file),
            dir.join(file),
        )
        .unwrap();
    }
}

#[test]
fn corrupt_parquet_files_found_by_fuzzing_are_errors_naming_the_file() {
    let dir = root().join("tests/fixtures/fuzz/dataset_parquet");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let path_s = path.display().to_string();
        let (code, err) = orpo(&["data", "inspect", "--dataset", &path_s]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(&path_s) && err.contains("Parquet"),
            "{path_s}: {err}"
        );
    }
}

#[test]
fn tokenizer_larger_than_the_embedding_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    model_dir(tmp.path(), 256);
    let model = tmp.path().display().to_string();
    let (code, err) = orpo(&[
        "eval",
        "--model",
        &model,
        "--dataset",
        "datasets/arith-prefs-chat",
        "--set",
        "max_length=64",
        "--set",
        "max_prompt_length=48",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("512") && err.contains("256") && err.contains("embedding"),
        "{err}"
    );
    let (code, err) = orpo(&["generate", "--model", &model, "--prompt", "1 + 1?"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("512") && err.contains("256"), "{err}");
}

#[test]
fn pickle_only_model_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    model_dir(tmp.path(), 512);
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    std::fs::write(tmp.path().join("pytorch_model.bin"), b"\x80\x02}q\x00.").unwrap();
    let model = tmp.path().display().to_string();
    let (code, err) = orpo(&["generate", "--model", &model, "--prompt", "1 + 1?"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("pytorch_model.bin") && err.contains("never loaded"),
        "{err}"
    );
}
