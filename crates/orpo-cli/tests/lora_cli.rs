//! LoRA through the binary: `use_peft` training, `final/` as a PEFT adapter directory that
//! `eval` loads onto its base, and `export` of a LoRA checkpoint as an adapter or merged.

use std::path::{Path, PathBuf};

mod common;
use common::orpo;

fn train(out: &Path, extra: &[&str]) {
    let out_s = format!("output_dir={}", out.display());
    let mut args = vec![
        "train",
        "--config",
        "configs/demo.yaml",
        "--set",
        &out_s,
        "--set",
        "max_steps=2",
        "--set",
        "save_steps=2",
        "--set",
        "eval_steps=null",
        "--set",
        "max_eval_samples=8",
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = orpo(&args);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn lora_train_eval_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    // A base model on disk: two full fine-tuning steps of the tiny model.
    let base_run = tmp.path().join("base-run");
    train(
        &base_run,
        &[
            "--set",
            "model_config=tests/fixtures/tiny-model/config.json",
        ],
    );
    let base = base_run.join("final");
    let base_s = format!("model_name_or_path={}", base.display());

    let run = tmp.path().join("lora-run");
    train(
        &run,
        &[
            "--set",
            &base_s,
            "--set",
            "model_config=null",
            "--set",
            "use_peft=true",
            "--set",
            "lora_target_modules=all-linear",
            "--set",
            "lora_export=both",
        ],
    );
    let final_dir = run.join("final");
    assert!(final_dir.join("adapter_config.json").is_file());
    assert!(!final_dir.join("model.safetensors").exists());
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(final_dir.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["base_model_name_or_path"],
        base.display().to_string()
    );
    assert_eq!(config["peft_type"], "LORA");
    assert!(run.join("final-merged/model.safetensors").is_file());

    // eval loads the adapter directory onto the base it names.
    let (code, stdout, err) = orpo(&[
        "eval",
        "--model",
        &final_dir.display().to_string(),
        "--dataset",
        "datasets/arith-prefs-chat",
        "--set",
        "max_length=64",
        "--set",
        "max_prompt_length=48",
        "--set",
        "max_eval_samples=8",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("eval_loss"), "{stdout}");

    // export of the LoRA checkpoint: the adapter as is, or merged (= final-merged/).
    let ckpt = run.join("checkpoint-2").display().to_string();
    let adapter_out = tmp.path().join("adapter-out");
    let (code, _, err) = orpo(&[
        "export",
        "--checkpoint",
        &ckpt,
        "--out",
        &adapter_out.display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    assert!(
        read(adapter_out.join("adapter_model.safetensors"))
            == read(run.join("checkpoint-2/adapter_model.safetensors"))
    );
    let merged_out = tmp.path().join("merged-out");
    let (code, _, err) = orpo(&[
        "export",
        "--checkpoint",
        &ckpt,
        "--out",
        &merged_out.display().to_string(),
        "--merge",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        read(merged_out.join("model.safetensors"))
            == read(run.join("final-merged/model.safetensors"))
    );

    // An adapter that does not name its base needs --base.
    let orphan = tmp.path().join("orphan");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::copy(
        final_dir.join("adapter_model.safetensors"),
        orphan.join("adapter_model.safetensors"),
    )
    .unwrap();
    let mut config = config.clone();
    config["base_model_name_or_path"] = serde_json::Value::Null;
    std::fs::write(orphan.join("adapter_config.json"), config.to_string()).unwrap();
    let orphan_s = orphan.display().to_string();
    let out_s = tmp.path().join("x").display().to_string();
    let (code, _, err) = orpo(&[
        "export",
        "--checkpoint",
        &orphan_s,
        "--out",
        &out_s,
        "--merge",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--base"), "{err}");
    let base_dir = base.display().to_string();
    let (code, _, err) = orpo(&[
        "export",
        "--checkpoint",
        &orphan_s,
        "--out",
        &out_s,
        "--merge",
        "--base",
        &base_dir,
    ]);
    assert_eq!(code, 0, "{err}");
}
