//! Test helpers: temporary directories and small Parquet/JSONL writers.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow_array::{ArrayRef, RecordBatch};
use parquet::arrow::ArrowWriter;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn tokenizer_dir() -> PathBuf {
    repo_root().join("datasets/arith-prefs/tokenizer")
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "orpo-data-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes columns to a Parquet file.
pub fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

pub fn strings(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(arrow_array::StringArray::from(v.to_vec()))
}

/// A standard-format file of `n` good rows.
pub fn good_parquet(path: &Path, n: usize) {
    let p: Vec<String> = (0..n).map(|i| format!("What is {i} + 1?")).collect();
    let c: Vec<String> = (0..n).map(|i| format!(" {i} + 1 = {}.", i + 1)).collect();
    let r: Vec<String> = (0..n).map(|i| format!(" {i} + 1 = {}.", i + 2)).collect();
    let arr = |v: &Vec<String>| -> ArrayRef {
        Arc::new(arrow_array::StringArray::from_iter_values(v.iter()))
    };
    write_parquet(
        path,
        vec![
            ("prompt", arr(&p)),
            ("chosen", arr(&c)),
            ("rejected", arr(&r)),
        ],
    );
}

pub fn write_text(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, text).unwrap();
}
