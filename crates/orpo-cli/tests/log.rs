//! The binary's log (src/log.rs): the library's `tracing` events as plain stderr lines, `-q`,
//! `RUST_LOG`; and what `report_to: tensorboard` and `generate_during_eval: true` leave in the
//! output directory of a short run.

use std::path::Path;
use std::process::Command;

mod common;
use common::root;

/// `orpo [FLAGS] train` of 2 steps of a fresh tiny model into `out`, with `env` set.
fn train(out: &Path, flags: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out_s = out.display().to_string();
    let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
    for a in [
        "train",
        "--config",
        "configs/demo.yaml",
        "--set",
        &format!("output_dir={out_s}"),
        "--set",
        "model_config=tests/fixtures/tiny-model/config.json",
        "--set",
        "max_steps=2",
        "--set",
        "logging_steps=1",
        "--set",
        "eval_steps=2",
        "--set",
        "save_steps=0",
        "--set",
        "max_eval_samples=4",
        "--set",
        "per_device_eval_batch_size=2",
        "--set",
        "max_completion_length=6",
        "--set",
        "report_to=[tensorboard]",
        "--set",
        "generate_during_eval=true",
        "--set",
        "run_name=x",
    ] {
        args.push(a.to_string());
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orpo"));
    cmd.args(&args).current_dir(root()).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn lines_quiet_rust_log_tensorboard_and_samples() {
    let tmp = tempfile::tempdir().unwrap();

    // Default: the progress lines as before tracing, warnings prefixed.
    let out = tmp.path().join("default");
    let (code, stdout, err) = train(&out, &[], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("step 2/2 | epoch ")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("eval @ step 2 | eval_loss ")),
        "{err}"
    );
    assert!(
        err.lines().any(
            |l| l.starts_with("warning: config: config keys with no effect here")
                && l.ends_with("run_name")
        ),
        "{err}"
    );
    assert!(err.contains("TensorBoard events: "), "{err}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["global_step"], 2);
    // One run directory with one event file; two sample rows of the evaluation at step 2.
    let runs: Vec<_> = std::fs::read_dir(out.join("runs")).unwrap().collect();
    assert_eq!(runs.len(), 1);
    let run = runs.into_iter().next().unwrap().unwrap().path();
    let events = orpo_train_event_files(&run);
    assert_eq!(events.len(), 1, "{events:?}");
    let samples = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = samples
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{samples}");
    for row in &rows {
        assert_eq!(row["step"], 2);
        for key in ["prompt", "chosen", "completion"] {
            assert!(row[key].is_string(), "{row}");
        }
    }

    // -q: warnings only; the summary still on stdout.
    let out = tmp.path().join("quiet");
    let (code, stdout, err) = train(&out, &["-q"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("step 1/2") && !err.contains("eval @"),
        "{err}"
    );
    assert!(err.contains("warning: config:"), "{err}");
    assert!(stdout.contains("\"global_step\":2"), "{stdout}");

    // -v: our crates' debug events too (tokenization reports, event and sample writes).
    let out = tmp.path().join("verbose");
    let (code, _, err) = train(&out, &["-v"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("debug: orpo_train::progress: tokenizing train: ")),
        "{err}"
    );
    assert!(err.contains("sample rows"), "{err}");
    assert!(err.contains("step 2/2 | epoch "), "{err}");

    // RUST_LOG decides over -q.
    let out = tmp.path().join("rust_log");
    let (code, _, err) = train(&out, &["-q"], &[("RUST_LOG", "orpo_train=info")]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("step 2/2 | epoch "), "{err}");
    assert!(
        !err.contains("warning: config:"),
        "only orpo_train's events: {err}"
    );
}

fn orpo_train_event_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("events.out.tfevents."))
        .collect()
}
