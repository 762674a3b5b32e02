//! Bad input: each problem is an error naming file, row and column, or is skipped and counted.

mod common;

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array};
use common::*;
use orpo_data::{DataConfig, DataError, PreferenceDataset, RowIssue};

fn load_err(path: &std::path::Path) -> DataError {
    PreferenceDataset::load(path, None, &DataConfig::default()).unwrap_err()
}

fn skipping() -> DataConfig {
    DataConfig {
        skip_bad_rows: true,
        ..Default::default()
    }
}

fn assert_bad_row(err: DataError, file: &std::path::Path, row: usize, column: &str, kind: &str) {
    let msg = err.to_string();
    match err {
        DataError::BadRow {
            origin,
            column: c,
            issue,
        } => {
            assert_eq!(origin.file, file, "{msg}");
            assert_eq!(origin.row, row, "{msg}");
            assert_eq!(c, column, "{msg}");
            assert_eq!(issue.kind(), kind, "{msg}");
            assert!(msg.contains(&file.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("row {row}")), "{msg}");
            assert!(msg.contains(column), "{msg}");
        }
        other => panic!("expected BadRow, got {other}"),
    }
}

#[test]
fn missing_column() {
    let dir = temp_dir("missing");
    let f = dir.join("d.parquet");
    write_parquet(
        &f,
        vec![
            ("prompt", strings(&[Some("p")])),
            ("chosen", strings(&[Some("c")])),
            ("score", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ],
    );
    let err = load_err(&f);
    let msg = err.to_string();
    assert!(matches!(err, DataError::MissingColumn { ref column, .. } if column == "rejected"));
    assert!(
        msg.contains("d.parquet") && msg.contains("rejected"),
        "{msg}"
    );
}

#[test]
fn null_value() {
    let dir = temp_dir("null");
    let f = dir.join("d.parquet");
    write_parquet(
        &f,
        vec![
            ("prompt", strings(&[Some("p"), Some("q")])),
            ("chosen", strings(&[Some(" a"), None])),
            ("rejected", strings(&[Some(" b"), Some(" c")])),
        ],
    );
    assert_bad_row(load_err(&f), &f, 1, "chosen", "null");
    let ds = PreferenceDataset::load(&f, None, &skipping()).unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds.load_report().skipped["null"], 1);
    assert_eq!(ds.load_report().rows_read, 2);
}

#[test]
fn wrong_type() {
    let dir = temp_dir("type");
    let f = dir.join("d.parquet");
    write_parquet(
        &f,
        vec![
            ("prompt", strings(&[Some("p")])),
            ("chosen", strings(&[Some(" a")])),
            ("rejected", Arc::new(Int64Array::from(vec![7])) as ArrayRef),
        ],
    );
    assert_bad_row(load_err(&f), &f, 0, "rejected", "wrong_type");
}

#[test]
fn empty_text() {
    let dir = temp_dir("empty");
    let f = dir.join("d.parquet");
    write_parquet(
        &f,
        vec![
            ("prompt", strings(&[Some("p"), Some("p2"), Some("p3")])),
            ("chosen", strings(&[Some(" a"), Some(" b"), Some("  ")])),
            ("rejected", strings(&[Some(" b"), Some(" c"), Some(" d")])),
        ],
    );
    assert_bad_row(load_err(&f), &f, 2, "chosen", "empty");
}

#[test]
fn identical_pair() {
    let dir = temp_dir("ident");
    let f = dir.join("d.jsonl");
    write_text(
        &f,
        "{\"prompt\": \"p\", \"chosen\": \" x\", \"rejected\": \" y\"}\n{\"prompt\": \"p\", \"chosen\": \" x\", \"rejected\": \" x\"}\n",
    );
    assert_bad_row(load_err(&f), &f, 1, "rejected", "identical_pair");
}

#[test]
fn corrupt_truncated_and_non_parquet_files() {
    let dir = temp_dir("corrupt");
    let good = dir.join("good.parquet");
    good_parquet(&good, 100);
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.join("truncated.parquet");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let mut flipped = bytes.clone();
    for b in &mut flipped[4..bytes.len() / 2] {
        *b ^= 0x5a;
    }
    let corrupt = dir.join("corrupt.parquet");
    std::fs::write(&corrupt, &flipped).unwrap();
    let text = dir.join("text.parquet");
    std::fs::write(&text, "prompt,chosen,rejected\na,b,c\n").unwrap();

    for f in [&truncated, &corrupt, &text] {
        // skipping rows does not hide a broken file
        let err = PreferenceDataset::load(f, None, &skipping()).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, DataError::Parquet { ref path, .. } if path == f),
            "{msg}"
        );
        assert!(msg.contains(&f.display().to_string()), "{msg}");
    }
}

#[test]
fn broken_jsonl_line() {
    let dir = temp_dir("jsonl");
    let f = dir.join("d.jsonl");
    write_text(
        &f,
        "{\"prompt\": \"p\", \"chosen\": \" x\", \"rejected\": \" y\"}\n{\"prompt\": \"p\", \"chosen\": \" x\",\n[1, 2]\n{\"prompt\": \"q\", \"chosen\": \" x\", \"rejected\": \" z\"}\n",
    );
    assert_bad_row(load_err(&f), &f, 1, "*", "broken_json_line");
    let ds = PreferenceDataset::load(&f, None, &skipping()).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.load_report().skipped["broken_json_line"], 2);
}

#[test]
fn bad_messages() {
    let dir = temp_dir("msgs");
    let f = dir.join("d.jsonl");
    write_text(
        &f,
        concat!(
            r#"{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "q"}, {"role": "assistant"}]}"#,
            "\n",
            r#"{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected": 5}"#,
            "\n",
            r#"{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "b"}]}"#,
            "\n",
            r#"{"chosen": " plain", "rejected": [{"role": "assistant", "content": "b"}]}"#,
            "\n",
        ),
    );
    let err = load_err(&f);
    assert!(
        matches!(
            &err,
            DataError::BadRow {
                issue: RowIssue::BadMessage { index: 1, .. },
                ..
            }
        ),
        "{err}"
    );
    assert_bad_row(err, &f, 0, "rejected", "bad_message");
    let ds = PreferenceDataset::load(&f, None, &skipping()).unwrap();
    assert_eq!(ds.len(), 0);
    let r = ds.load_report();
    assert_eq!(r.skipped["bad_message"], 1);
    assert_eq!(r.skipped["wrong_type"], 1);
    assert_eq!(r.skipped["no_shared_prompt"], 1);
    assert_eq!(r.skipped["mixed_formats"], 1);
    assert_eq!(r.skipped_total(), 4);
    assert_eq!(r.skipped_examples.len(), 4);
}

#[test]
fn skip_counts_across_kinds() {
    let dir = temp_dir("skipmix");
    let f = dir.join("d.jsonl");
    write_text(
        &f,
        concat!(
            r#"{"prompt": "p", "chosen": " a", "rejected": " b"}"#,
            "\n",
            r#"{"prompt": "p", "chosen": null, "rejected": " b"}"#,
            "\n",
            r#"{"prompt": "p", "chosen": "", "rejected": " b"}"#,
            "\n",
            r#"{"prompt": "p", "chosen": " a", "rejected": " a"}"#,
            "\n",
            r#"{"prompt": "p", "rejected": " a"}"#,
            "\n",
            r#"not json"#,
            "\n",
            r#"{"prompt": "p", "chosen": " c", "rejected": " d", "extra": 1}"#,
            "\n"
        ),
    );
    let ds = PreferenceDataset::load(&f, None, &skipping()).unwrap();
    let r = ds.load_report();
    assert_eq!((r.rows_read, r.rows_kept), (7, 2));
    assert_eq!(r.skipped["null"], 2);
    assert_eq!(r.skipped["empty"], 1);
    assert_eq!(r.skipped["identical_pair"], 1);
    assert_eq!(r.skipped["broken_json_line"], 1);
}

#[test]
fn conversational_column_holding_a_bad_json_string() {
    let dir = temp_dir("badjson");
    let f = dir.join("d.parquet");
    write_parquet(
        &f,
        vec![
            (
                "chosen",
                strings(&[Some(
                    r#"[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]"#,
                )]),
            ),
            (
                "rejected",
                strings(&[Some(
                    r#"[{"role": "user", "content": "q"}, {"role": "assistant", "content": "#,
                )]),
            ),
        ],
    );
    let cfg = DataConfig {
        format: orpo_data::ColumnFormat::Conversational,
        ..Default::default()
    };
    let err = PreferenceDataset::load(&f, None, &cfg).unwrap_err();
    assert_bad_row(err, &f, 0, "rejected", "bad_json");
}
