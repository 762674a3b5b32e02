//! `orpo train --learner burn-train` end to end: the run trains, evaluates and writes `final/`,
//! and off a terminal its output is the run's own lines (no burn-train debug dumps).

mod common;
use common::{metrics, orpo};

#[test]
fn burn_train_learner_runs_with_plain_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let out_s = format!("output_dir={}", out.display());
    let (code, stdout, err) = orpo(&[
        "train",
        "--config",
        "configs/demo.yaml",
        "--learner",
        "burn-train",
        "--set",
        &out_s,
        "--set",
        "max_steps=10",
        "--set",
        "logging_steps=5",
        "--set",
        "save_strategy=epoch",
        "--set",
        "eval_strategy=epoch",
    ]);
    assert_eq!(code, 0, "{err}\n{stdout}");
    let all = format!("{stdout}{err}");
    assert!(all.contains("step 10/10"), "{all}");
    assert!(all.contains("eval @ step 10"), "{all}");
    for noise in ["ProgressSnapshot", "Starting split", "Split ended"] {
        assert!(
            !all.contains(noise),
            "burn-train's fallback renderer printed {noise:?}:\n{all}"
        );
    }
    let rows = metrics(&out);
    assert!(rows.iter().any(|r| r.get("loss").is_some()), "{rows:?}");
    assert!(out.join("final/config.json").is_file());
}
