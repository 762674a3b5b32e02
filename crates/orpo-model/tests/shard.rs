//! Sharded saves against what transformers writes: `save_pretrained(max_shard_size="150KB")` of
//! tests/fixtures/train/model (scripts/make_shard_fixture.py) gives 3 shards; ours must name the
//! same files, put the same tensors in each, write the same index text, and load back.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use orpo_model::shard::{INDEX_FILE, parse_shard_size};
use orpo_model::{DecoderForCausalLM, SafetensorsCheckpoint, SaveDtype};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tensor_names(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut names: Vec<String> = meta.tensors().keys().cloned().collect();
    names.sort();
    names
}

#[test]
fn sharded_save_matches_transformers_and_loads_back() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/shard/train_model_150KB.json"))
            .unwrap(),
    )
    .unwrap();
    let device = Device::flex();
    let model =
        DecoderForCausalLM::from_pretrained(root().join("tests/fixtures/train/model"), &device)
            .unwrap();
    let out = tempfile::tempdir().unwrap();
    // A single file left by an earlier save must not survive beside the shards.
    model.save_pretrained(out.path(), SaveDtype::F32).unwrap();
    assert!(out.path().join("model.safetensors").is_file());

    let limit = parse_shard_size(fixture["max_shard_size"].as_str().unwrap()).unwrap();
    model
        .save_pretrained_sharded(out.path(), SaveDtype::F32, limit)
        .unwrap();
    assert!(!out.path().join("model.safetensors").exists());
    let index = std::fs::read_to_string(out.path().join(INDEX_FILE)).unwrap();
    assert_eq!(index, fixture["index_text"].as_str().unwrap());
    for (file, names) in fixture["shards"].as_object().unwrap() {
        let want: Vec<String> = serde_json::from_value(names.clone()).unwrap();
        assert_eq!(tensor_names(&out.path().join(file)), want, "{file}");
    }

    // The shards load back (our loader follows the index) to the same weights, bit for bit.
    let back = DecoderForCausalLM::from_pretrained(out.path(), &device).unwrap();
    let (a, b) = (model.hf_tensors().unwrap(), back.hf_tensors().unwrap());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.name, y.name);
        assert_eq!(x.values, y.values, "{}", x.name);
    }
    let checkpoint = SafetensorsCheckpoint::open(out.path(), &device).unwrap();
    assert!(checkpoint.contains("model.layers.1.mlp.down_proj.weight"));

    // Saving again unsharded removes the shards and the index.
    model.save_pretrained(out.path(), SaveDtype::Bf16).unwrap();
    let left: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("safetensors"))
        .collect();
    assert_eq!(left, ["model.safetensors"]);
}

#[test]
fn bf16_halves_the_sizes_in_the_index() {
    let device = Device::flex();
    let model =
        DecoderForCausalLM::from_pretrained(root().join("tests/fixtures/train/model"), &device)
            .unwrap();
    let out = tempfile::tempdir().unwrap();
    model
        .save_pretrained_sharded(out.path(), SaveDtype::Bf16, 100_000)
        .unwrap();
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join(INDEX_FILE)).unwrap())
            .unwrap();
    assert_eq!(index["metadata"]["total_size"], 427264 / 2);
    assert_eq!(index["metadata"]["total_parameters"], 106816);
    let files: std::collections::BTreeSet<&str> = index["weight_map"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    // 213 632 bytes at 100 kB: the 65 536-byte embedding and layer 0 fill the first shards.
    assert!(files.len() >= 3, "{files:?}");
    for file in files {
        let size = std::fs::metadata(out.path().join(file)).unwrap().len();
        // Each shard's tensor bytes stay under the limit (plus the small safetensors header).
        assert!(size <= 100_000 + 4096, "{file}: {size} bytes");
    }
}
