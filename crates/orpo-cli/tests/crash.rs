//! Crash safety: `orpo train` killed with SIGKILL at many points (among them in the middle of
//! writing a checkpoint, half written and complete-but-not-renamed) and resumed each time ends
//! with the same final weights and metrics as an uninterrupted run, and after every kill the
//! latest complete checkpoint loads.
//!
//! To kill inside a checkpoint write deterministically, the child runs with
//! `ORPO_TEST_PAUSE_IN_CHECKPOINT_MS` set: each save then prints an `orpo-test-pause:` line and
//! sleeps at two points (weights written but not the optimizer state; the whole temporary
//! directory written but not renamed), and the test kills it while it sleeps there.

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use orpo_train::checkpoint::{TRAINER_STATE, TrainerState, list_checkpoints};

mod common;
use common::{metrics, root};

/// 12 steps of a tiny model, a checkpoint every 2 steps (at most 2 kept), evaluation every 6.
fn train_args(out: &Path) -> Vec<String> {
    let mut args: Vec<String> = ["train", "--config", "configs/demo.yaml", "--resume"]
        .map(String::from)
        .to_vec();
    for set in [
        format!("output_dir={}", out.display()),
        "model_config=tests/fixtures/tiny-model/config.json".into(),
        "dataset_train_split=test".into(),
        "per_device_train_batch_size=4".into(),
        "max_steps=12".into(),
        "warmup_ratio=0.1".into(),
        "logging_steps=1".into(),
        "save_steps=2".into(),
        "save_total_limit=2".into(),
        "eval_steps=6".into(),
        "max_eval_samples=8".into(),
        "overwrite_output_dir=false".into(),
    ] {
        args.push("--set".into());
        args.push(set);
    }
    args
}

/// When the test kills a run.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// At the n-th pause point of this process (1-based).
    AtPause(usize),
    /// At the first pause point whose line contains this text.
    AtPauseMatching(&'static str),
    /// This long after the start, wherever the run is.
    After(Duration),
}

/// How a run ended, and the pause line it was killed at.
#[derive(Debug)]
enum Outcome {
    Killed { at_pause: Option<String> },
    Finished,
}

/// Starts a resumable training run into `out` and kills it as `kill` says (or lets it finish).
fn run_and_kill(out: &Path, kill: Kill) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orpo"))
        .args(train_args(out))
        .current_dir(root())
        .env("ORPO_TEST_PAUSE_IN_CHECKPOINT_MS", "400")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("orpo-test-pause:") {
                let _ = tx.send(line.clone());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let started = Instant::now();
    let mut pauses = 0;
    let mut at_pause = None;
    let deadline = Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let log = reader.join().unwrap();
            assert!(status.success(), "{kill:?}: the run failed: {log}");
            return Outcome::Finished;
        }
        assert!(started.elapsed() < deadline, "{kill:?}: the run hangs");
        let due = match kill {
            Kill::After(delay) => started.elapsed() >= delay,
            Kill::AtPause(n) => match rx.recv_timeout(Duration::from_millis(5)) {
                Ok(line) => {
                    pauses += 1;
                    let due = pauses == n;
                    if due {
                        at_pause = Some(line);
                    }
                    due
                }
                Err(_) => false,
            },
            Kill::AtPauseMatching(text) => match rx.recv_timeout(Duration::from_millis(5)) {
                Ok(line) if line.contains(text) => {
                    at_pause = Some(line);
                    true
                }
                _ => false,
            },
        };
        if matches!(kill, Kill::After(_)) {
            std::thread::sleep(Duration::from_millis(2));
        }
        if due {
            // A process that exited meanwhile cannot be killed: then it finished.
            let killed = child.kill().is_ok();
            let status = child.wait().unwrap();
            let log = reader.join().unwrap();
            if !killed || status.success() {
                assert!(status.success(), "{kill:?}: {log}");
                return Outcome::Finished;
            }
            return Outcome::Killed { at_pause };
        }
    }
}

/// The temporary directory named by a pause line (`orpo-test-pause: WHAT: PATH`).
fn paused_path(line: &str) -> PathBuf {
    let path = PathBuf::from(line.rsplit(": ").next().unwrap());
    if path.extension().is_some_and(|e| e == "safetensors") {
        path.parent().unwrap().to_path_buf()
    } else {
        path
    }
}

/// What a kill left: the paused temporary directory is there (the kill landed inside a write)
/// and every `checkpoint-<step>` is complete and loads. Returns the latest checkpoint's step.
fn check_after_kill(out: &Path, at_pause: Option<&str>) -> usize {
    if let Some(line) = at_pause {
        let tmp = paused_path(line);
        assert!(tmp.is_dir(), "the kill should leave {}", tmp.display());
        let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with('.') && name.contains(".tmp-"), "{name}");
        if line.contains("half written") {
            assert!(tmp.join("model.safetensors").is_file());
            assert!(!tmp.join(TRAINER_STATE).exists());
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(out)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let checkpoints: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("checkpoint-"))
        .collect();
    let complete = list_checkpoints(out);
    assert_eq!(
        checkpoints.len(),
        complete.len(),
        "a checkpoint-<step> directory is incomplete: {names:?}"
    );
    let device = burn::tensor::Device::default();
    for (step, dir) in &complete {
        for file in [
            "config.json",
            "model.safetensors",
            "optimizer.safetensors",
            "tokenizer.json",
        ] {
            assert!(dir.join(file).is_file(), "{}/{file}", dir.display());
        }
        let state: TrainerState =
            serde_json::from_str(&std::fs::read_to_string(dir.join(TRAINER_STATE)).unwrap())
                .unwrap();
        assert_eq!(state.global_step, *step);
        orpo_model::DecoderForCausalLM::from_pretrained(dir, &device)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        orpo_train::io::read_safetensors(&dir.join("optimizer.safetensors")).unwrap();
    }
    complete.last().map_or(0, |(step, _)| *step)
}

#[test]
fn killed_and_resumed_runs_end_like_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    let status = Command::new(env!("CARGO_BIN_EXE_orpo"))
        .args(train_args(&reference))
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let out = tmp.path().join("crashed");
    let ms = Duration::from_millis;
    let plan = [
        // Inside the first checkpoint's write, before any checkpoint exists: half written,
        // then complete but not yet renamed.
        Kill::AtPause(1),
        Kill::AtPause(2),
        // During start-up (data loading, tokenization) or the first steps.
        Kill::After(ms(40)),
        // After checkpoint-2: inside the write of checkpoint-4, at both points.
        Kill::AtPause(4),
        Kill::AtPause(3),
        // Anywhere: between steps, while logging, while pruning an old checkpoint.
        Kill::After(ms(250)),
        Kill::After(ms(700)),
        Kill::AtPause(5),
        Kill::After(ms(1300)),
        // While exporting final/ (the last checkpoint exists by then).
        Kill::AtPauseMatching(".final.tmp-"),
        Kill::After(ms(90)),
    ];
    let mut latest = 0;
    let mut killed = 0;
    let mut inside_writes = 0;
    for kill in plan {
        match run_and_kill(&out, kill) {
            Outcome::Killed { at_pause } => {
                killed += 1;
                inside_writes += usize::from(at_pause.is_some());
                let step = check_after_kill(&out, at_pause.as_deref());
                eprintln!("{kill:?}: killed; latest checkpoint {step}; at {at_pause:?}");
                assert!(
                    step >= latest,
                    "{kill:?}: checkpoint-{latest} was lost (latest now {step})"
                );
                latest = step;
            }
            Outcome::Finished => {
                eprintln!("{kill:?}: finished before the kill");
                break;
            }
        }
    }
    assert!(killed >= 8 && inside_writes >= 5, "{killed} kills");
    // Resume to the end.
    assert!(matches!(
        run_and_kill(&out, Kill::After(ms(60_000))),
        Outcome::Finished
    ));

    assert_eq!(
        std::fs::read(out.join("final/model.safetensors")).unwrap(),
        std::fs::read(reference.join("final/model.safetensors")).unwrap(),
        "final weights differ from the uninterrupted run's"
    );
    assert_eq!(metrics(&out), metrics(&reference));
    assert_eq!(metrics(&out).len(), 12 + 2, "12 steps and 2 evaluations");
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
