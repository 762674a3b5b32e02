//! What the binary's integration tests share: the workspace root and a way to run `orpo`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root: configs, datasets and fixtures are named relative to it.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `orpo ARGS` in the workspace root: exit code, stdout, stderr.
#[allow(dead_code)] // not every test file runs the binary this way
pub fn orpo(args: &[&str]) -> (i32, String, String) {
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

/// The rows of a run's `metrics.jsonl`, one JSON object each.
#[allow(dead_code)] // not every test file reads metrics
pub fn metrics(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
