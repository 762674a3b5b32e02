//! `orpo export`'s format flags through the binary: `--max-shard-size` shards as transformers
//! does, `--format gguf` writes a GGUF file with the checkpoint's tokenizer, and bad values are
//! usage errors (exit 2) naming the flag.

use std::path::Path;

mod common;
use common::root;

/// tests/fixtures/train/model with the bundled tokenizer, as a checkpoint directory.
fn checkpoint(dir: &Path) {
    for (from, names) in [
        (
            "tests/fixtures/train/model",
            &["config.json", "model.safetensors"][..],
        ),
        (
            "datasets/arith-prefs/tokenizer",
            &["tokenizer.json", "tokenizer_config.json"][..],
        ),
    ] {
        for name in names {
            std::fs::copy(root().join(from).join(name), dir.join(name)).unwrap();
        }
    }
}

#[test]
fn shards_and_gguf_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    checkpoint(&ckpt);
    let ckpt_s = ckpt.to_str().unwrap();

    let sharded = tmp.path().join("sharded");
    let (code, _, err) = common::orpo(&[
        "export",
        "--checkpoint",
        ckpt_s,
        "--out",
        sharded.to_str().unwrap(),
        "--max-shard-size",
        "150KB",
    ]);
    assert_eq!(code, 0, "{err}");
    for i in 1..=3 {
        let shard = sharded.join(format!("model-{i:05}-of-00003.safetensors"));
        assert!(shard.is_file(), "{}", shard.display());
    }
    assert!(sharded.join("model.safetensors.index.json").is_file());
    assert!(sharded.join("tokenizer.json").is_file());

    let gguf = tmp.path().join("model.gguf");
    let (code, _, err) = common::orpo(&[
        "export",
        "--checkpoint",
        ckpt_s,
        "--out",
        gguf.to_str().unwrap(),
        "--format",
        "gguf",
        "--dtype",
        "q8_0",
    ]);
    assert_eq!(code, 0, "{err}");
    let file = orpo_model::gguf::GgufFile::read(&gguf).unwrap();
    assert_eq!(
        file.get("general.file_type").and_then(|v| v.as_u64()),
        Some(7),
        "MOSTLY_Q8_0"
    );
    assert!(file.tensor_info("blk.1.ffn_up.weight").is_some());

    for (args, flag) in [
        (vec!["--max-shard-size", "5GiB"], "--max-shard-size"),
        (vec!["--format", "gguf", "--dtype", "q4_k"], "--dtype"),
        (vec!["--dtype", "q8_0"], "--dtype"),
    ] {
        let out = tmp.path().join("bad.gguf");
        let mut all = vec![
            "export",
            "--checkpoint",
            ckpt_s,
            "--out",
            out.to_str().unwrap(),
        ];
        all.extend(args.iter().copied());
        let (code, _, err) = common::orpo(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    let (code, _, err) = common::orpo(&[
        "export",
        "--checkpoint",
        ckpt_s,
        "--out",
        tmp.path().join("dir").to_str().unwrap(),
        "--format",
        "gguf",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(".gguf"), "{err}");
}
