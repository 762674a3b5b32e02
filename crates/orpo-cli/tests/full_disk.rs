//! A full disk while saving: the write fails with a clear error naming the file, no partial or
//! temporary file is left behind, and what was there before (an exported model, the last
//! checkpoint) is intact.
//!
//! The disk is "filled" by running `orpo` with `setrlimit(RLIMIT_FSIZE)` (and SIGXFSZ ignored),
//! so that any write past the limit fails with EFBIG midway through a file, as ENOSPC would on a
//! full disk. Unprivileged and safe to run anywhere.

#![cfg(unix)]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Larger than the metrics and config files, smaller than the tiny model's weights (140 KB).
const LIMIT: u64 = 64 * 1024;

mod common;
use common::root;

/// Runs `orpo`, its file size limited to `limit` bytes when given.
fn orpo(args: &[&str], limit: Option<u64>) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orpo"));
    cmd.args(args).current_dir(root());
    if let Some(limit) = limit {
        // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let rlim = libc::rlimit {
                    rlim_cur: limit as libc::rlim_t,
                    rlim_max: limit as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &rlim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn train(out: &Path, max_steps: usize, resume: bool, limit: Option<u64>) -> (i32, String) {
    let out_s = format!("output_dir={}", out.display());
    let steps = format!("max_steps={max_steps}");
    let mut args = vec![
        "train",
        "--config",
        "configs/demo.yaml",
        "--set",
        &out_s,
        "--set",
        "model_config=tests/fixtures/tiny-model/config.json",
        "--set",
        "dataset_train_split=test",
        "--set",
        "per_device_train_batch_size=4",
        "--set",
        &steps,
        "--set",
        "save_steps=2",
        "--set",
        "logging_steps=1",
        "--set",
        "max_eval_samples=4",
        "--set",
        "overwrite_output_dir=false",
    ];
    if resume {
        args.push("--resume");
    }
    orpo(&args, limit)
}

/// Every file under `dir` (relative path → bytes).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = PathBuf::from(path.file_name().unwrap());
        if path.is_dir() {
            for (rel, bytes) in snapshot(&path) {
                out.insert(name.join(rel), bytes);
            }
        } else {
            out.insert(name, std::fs::read(&path).unwrap());
        }
    }
    out
}

/// Temporary files or directories anywhere under `dir`.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir)
        .into_keys()
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect()
}

#[test]
fn export_onto_a_full_disk_keeps_the_previous_export() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let (code, err) = train(&run, 2, false, None);
    assert_eq!(code, 0, "{err}");
    let checkpoint = run.join("checkpoint-2").display().to_string();
    let exported = tmp.path().join("exported");
    let exported_s = exported.display().to_string();
    let export = ["export", "--checkpoint", &checkpoint, "--out", &exported_s];
    let (code, err) = orpo(&export, None);
    assert_eq!(code, 0, "{err}");
    let before = snapshot(&exported);

    let (code, err) = orpo(&export, Some(LIMIT));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("File too large") && err.contains("model.safetensors"),
        "the error should say what failed and where: {err}"
    );
    assert!(err.contains(&exported_s), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(snapshot(&exported), before, "the previous export changed");
    let entries: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !entries.iter().any(|n| n.contains(".tmp-")),
        "a temporary export was left behind: {entries:?}"
    );
}

#[test]
fn checkpoint_onto_a_full_disk_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let (code, err) = train(&run, 2, false, None);
    assert_eq!(code, 0, "{err}");
    let before = snapshot(&run.join("checkpoint-2"));

    let (code, err) = train(&run, 4, true, Some(LIMIT));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("File too large") && err.contains("checkpoint-4"),
        "the error should say what failed and where: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(snapshot(&run.join("checkpoint-2")), before);
    assert!(!run.join("checkpoint-4").exists());
    assert_eq!(temporaries(&run), Vec::<PathBuf>::new());

    // With room again, the run resumes from checkpoint-2 and finishes.
    let (code, err) = train(&run, 4, true, None);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("resuming from") && err.contains("checkpoint-2"),
        "{err}"
    );
}
