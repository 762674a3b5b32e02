//! The `cuda` binary on a machine where CUDA cannot run: one clear error (exit 1) naming what is
//! missing, before burn opens the device, never a panic or a hang. Built only with the `cuda`
//! feature (`cargo test -p orpo-cli --no-default-features --features cpu,cuda --test cuda`).
//!
//! `CUDA_VISIBLE_DEVICES=-1` hides every GPU from the driver, so the tests see the same failure on
//! a GPU machine (no device) as on one without a driver (no libcuda.so.1).
#![cfg(feature = "cuda")]

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;
use common::root;

/// The preflight loads libraries and calls the driver: seconds at most. A hang is a failure.
const DEADLINE: Duration = Duration::from_secs(120);

/// `orpo ARGS` with every GPU hidden: exit code, stdout, stderr. Fails on a hang or a panic.
fn orpo_without_gpus(args: &[&str]) -> (i32, String, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_orpo"))
        .args(args)
        .current_dir(root())
        .env("CUDA_VISIBLE_DEVICES", "-1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    let Ok(output) = result.recv_timeout(DEADLINE) else {
        // SAFETY: `kill` on the child's pid, which has not been waited for (it is still running).
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        panic!("orpo {args:?} still running after {DEADLINE:?}");
    };
    let output = output.unwrap();
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{args:?}: {err}"
    );
    (output.status.code().unwrap_or(-1), out, err)
}

/// The one error line, which must say what is missing and what to install.
fn the_error(args: &[&str], err: &str) -> String {
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("orpo: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{args:?}: {err}");
    let line = errors[0].to_string();
    let no_driver = line.contains("libcuda.so.1") && line.contains("install the NVIDIA driver");
    let no_device = line.contains("no CUDA device found");
    assert!(no_driver || no_device, "{args:?}: {line}");
    line
}

#[test]
fn training_on_cuda_without_a_gpu_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let set_out = format!("output_dir={}", out.display());
    for devices in [
        &["--device", "cuda"][..],
        &["--device", "cuda:1"],
        &["--devices", "cuda:0,cuda:1"],
    ] {
        let mut args = vec!["train", "--config", "configs/demo.yaml", "--set", &set_out];
        args.extend_from_slice(devices);
        let (code, _, err) = orpo_without_gpus(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        the_error(&args, &err);
        assert!(!out.exists(), "{args:?}: the run started");
    }
}

#[test]
fn eval_and_generate_are_checked_too() {
    let model = root().join("tests/fixtures/tiny-model");
    let model = model.to_str().unwrap();
    for args in [
        &[
            "eval",
            "--device",
            "cuda",
            "--model",
            model,
            "--dataset",
            "datasets/arith-small-chat",
        ][..],
        &[
            "generate", "--device", "cuda", "--model", model, "--prompt", "1+1",
        ],
    ] {
        let (code, _, err) = orpo_without_gpus(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        the_error(args, &err);
    }
}

/// `orpo doctor` prints every part, then fails on the first thing missing.
#[test]
fn doctor_reports_each_part_and_fails_without_a_device() {
    let args = ["doctor"];
    let (code, out, err) = orpo_without_gpus(&args);
    assert_eq!(code, 1, "{out}\n{err}");
    the_error(&args, &err);
    for part in [
        "backends compiled in: cpu, cuda[:N]",
        "CUDA driver: ",
        "NVRTC: ",
        "CUDA headers: ",
        "NCCL: ",
    ] {
        assert!(out.contains(part), "no `{part}` in:\n{out}");
    }
}

/// A command that opens no device is not held up by the CUDA checks.
#[test]
fn commands_without_a_device_skip_the_cuda_checks() {
    let (code, out, err) = orpo_without_gpus(&[
        "data",
        "inspect",
        "--device",
        "cuda",
        "--dataset",
        "datasets/arith-small-chat",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("train"), "{out}");
}
