//! The binary's contract: exit codes, error messages naming the key, and a short training run.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{metrics, orpo, root};

#[test]
fn unknown_config_key_exits_2_and_names_it() {
    let (code, _, err) = orpo(&[
        "train",
        "--config",
        "configs/demo.yaml",
        "--set",
        "learning_rat=1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("learning_rat") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn wrong_type_exits_2_and_names_the_key() {
    let (code, _, err) = orpo(&[
        "train",
        "--config",
        "configs/demo.yaml",
        "--set",
        "max_steps=lots",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("max_steps"), "{err}");
}

#[test]
fn missing_config_file_is_an_error_naming_it() {
    let (code, _, err) = orpo(&["train", "--config", "nope.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope.yaml"), "{err}");
}

#[test]
fn unknown_device_is_a_usage_error() {
    let (code, _, err) = orpo(&["--device", "tpu", "plot", "x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tpu"), "{err}");
}

#[test]
fn train_eval_generate_export_plot_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out_s = out.display().to_string();
    let (code, stdout, err) = orpo(&[
        "train",
        "--config",
        "configs/demo.yaml",
        "--set",
        &format!("output_dir={out_s}"),
        "--set",
        "model_config=tests/fixtures/tiny-model/config.json",
        "--set",
        "max_steps=4",
        "--set",
        "logging_steps=2",
        "--set",
        "eval_steps=2",
        "--set",
        "save_steps=2",
        "--set",
        "max_eval_samples=20",
    ]);
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["global_step"], 4);
    assert!(err.contains("step 2/4") && err.contains("ETA"), "{err}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(
        metrics.contains("\"eval_rewards/accuracies\"") && metrics.contains("\"learning_rate\"")
    );

    let final_dir = out.join("final").display().to_string();
    let (code, stdout, err) = orpo(&[
        "eval",
        "--model",
        &final_dir,
        "--dataset",
        "datasets/arith-prefs-chat",
        "--set",
        "max_length=64",
        "--set",
        "max_prompt_length=48",
        "--set",
        "max_eval_samples=7",
    ]);
    assert_eq!(code, 0, "{err}");
    let eval: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(
        eval["eval_rewards/accuracies"].as_f64().is_some(),
        "{stdout}"
    );
    assert_eq!(eval["eval_samples"].as_f64(), Some(7.0), "{stdout}");

    let (code, _, err) = orpo(&[
        "generate",
        "--model",
        &final_dir,
        "--prompt",
        "What is 2 + 3?",
        "--max-new-tokens",
        "5",
    ]);
    assert_eq!(code, 0, "{err}");

    let exported = tmp.path().join("exported").display().to_string();
    let ckpt = out.join("checkpoint-2").display().to_string();
    let (code, _, err) = orpo(&["export", "--checkpoint", &ckpt, "--out", &exported]);
    assert_eq!(code, 0, "{err}");
    assert!(Path::new(&exported).join("model.safetensors").is_file());

    let (code, stdout, err) = orpo(&["plot", &out_s]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("logps.svg"));

    let (code, stdout, err) = orpo(&[
        "data",
        "inspect",
        "--dataset",
        "datasets/arith-prefs",
        "--tokenizer",
        "datasets/arith-prefs/tokenizer",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(
        summary.get("train").is_some() && summary.get("test").is_some(),
        "{stdout}"
    );

    // A second run into the same directory is refused without --resume.
    let (code, _, err) = orpo(&[
        "train",
        "--config",
        "configs/demo.yaml",
        "--set",
        &format!("output_dir={out_s}"),
        "--set",
        "overwrite_output_dir=false",
        "--set",
        "max_steps=1",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already holds a run"), "{err}");
}

/// Writes `files` into a Hugging Face Hub cache entry `<kind>s--owner--name` at `refs/main`,
/// the layout `huggingface-cli download` leaves.
fn fake_hub_entry(cache: &Path, folder: &str, files: &[(PathBuf, &str)]) {
    let repo = cache.join(folder);
    let snapshot = repo.join("snapshots").join("4f1c2e0a");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "4f1c2e0a").unwrap();
    for (source, name) in files {
        let target = snapshot.join(name);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(source, target).unwrap();
    }
}

#[test]
fn hub_ids_resolve_through_the_hub_cache_offline() {
    let cache = tempfile::tempdir().unwrap();
    let root = root();
    let model = root.join("tests/fixtures/train/model");
    let tokenizer = root.join("datasets/arith-prefs/tokenizer");
    fake_hub_entry(
        cache.path(),
        "models--orpo-test--tiny-llama",
        &[
            (model.join("config.json"), "config.json"),
            (model.join("model.safetensors"), "model.safetensors"),
            (tokenizer.join("tokenizer.json"), "tokenizer.json"),
            (
                tokenizer.join("tokenizer_config.json"),
                "tokenizer_config.json",
            ),
        ],
    );
    fake_hub_entry(
        cache.path(),
        "datasets--orpo-test--arith",
        &[(
            root.join("datasets/arith-small-chat/data/test-00000-of-00001.parquet"),
            "data/test-00000-of-00001.parquet",
        )],
    );
    let run = |model: &str| {
        Command::new(env!("CARGO_BIN_EXE_orpo"))
            .args(["eval", "--model", model, "--dataset", "orpo-test/arith"])
            .args(["--split", "test"])
            .env("HF_HUB_CACHE", cache.path())
            .env("HF_HUB_OFFLINE", "1")
            .current_dir(&root)
            .output()
            .unwrap()
    };
    let out = run("orpo-test/tiny-llama");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let metrics: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(
        metrics["eval_loss"].as_f64().unwrap().is_finite(),
        "{stdout}"
    );
    assert!(
        stderr.contains("snapshots"),
        "the resolved snapshot is reported: {stderr}"
    );

    // An id that is neither local nor cached, offline: an error naming the id and the cache.
    let out = run("orpo-test/absent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("orpo-test/absent") && stderr.contains("HF_HUB_OFFLINE"),
        "{stderr}"
    );
}

/// `--devices cpu,cpu` (two replicas on the one CPU device, the `--devices cuda:0,cuda:1` code
/// path without the transfers) with 2 pairs per device logs what 4 pairs on one device log.
#[test]
fn devices_split_the_batch_and_keep_the_effective_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, device_args: &[&str], per_device: usize| {
        let out = tmp.path().join(name).display().to_string();
        let output_dir = format!("output_dir={out}");
        let batch = format!("per_device_train_batch_size={per_device}");
        let mut args = vec!["train"];
        args.extend_from_slice(device_args);
        args.extend_from_slice(&[
            "--config",
            "configs/demo.yaml",
            "--set",
            &output_dir,
            "--set",
            "model_name_or_path=tests/fixtures/train/model",
            "--set",
            "model_config=null",
            "--set",
            &batch,
            "--set",
            "max_steps=3",
            "--set",
            "logging_steps=1",
            "--set",
            "eval_steps=null",
            "--set",
            "save_steps=1000",
        ]);
        let (code, _, err) = orpo(&args);
        assert_eq!(code, 0, "{err}");
        metrics(&tmp.path().join(name))
            .into_iter()
            .filter(|v| v.get("loss").is_some())
            .collect::<Vec<_>>()
    };
    let one = run("one", &["--device", "cpu"], 4);
    let two = run("two", &["--devices", "cpu,cpu"], 2);
    assert_eq!(one.len(), 3);
    assert_eq!(one.len(), two.len());
    for (a, b) in one.iter().zip(&two) {
        for key in ["loss", "nll_loss", "grad_norm", "logps/rejected"] {
            let (x, y) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-5 * x.abs().max(1.0),
                "step {}: {key} {x} on one device, {y} on two",
                a["step"]
            );
        }
    }
    let (code, _, err) = orpo(&[
        "train",
        "--devices",
        "cpu,tpu",
        "--config",
        "configs/demo.yaml",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tpu"), "{err}");
}
