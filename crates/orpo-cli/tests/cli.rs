//! The binary's contract: exit codes, error messages naming the key, and a short training run.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn orpo(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_orpo"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

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
    ]);
    assert_eq!(code, 0, "{err}");
    let eval: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(
        eval["eval_rewards/accuracies"].as_f64().is_some(),
        "{stdout}"
    );

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
