//! TensorBoard event files (`report_to: tensorboard`, src/tensorboard.rs).
//!
//! `tests/fixtures/tensorboard/` holds an event file this writer produced
//! (`events.out.tfevents.1700000000.orpo-fixture.1.0`) and `tensorboard_scalars.json`, what the
//! real `tensorboard` package (2.21, `EventAccumulator`, the loader behind
//! `tensorboard --logdir`) read from it: `scripts/check_tensorboard_events.py`. The writer must
//! still produce exactly that file, and its own reader must return exactly those scalars, so
//! the Python check holds without Python here. `ORPO_WRITE_FIXTURES=1` rewrites the event file
//! (then rerun the script).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use orpo_train::LogEntry;
use orpo_train::tensorboard::{EventWriter, FILE_VERSION, read_events};

const FIXTURE: &str = "events.out.tfevents.1700000000.orpo-fixture.1.0";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tensorboard")
}

/// Two logging steps and an evaluation, with the trainer's metric names.
fn entries() -> Vec<LogEntry> {
    let entry = |step: usize, epoch: f64, values: &[(&str, f64)]| LogEntry {
        step,
        epoch,
        values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    };
    vec![
        entry(
            1,
            0.25,
            &[
                ("loss", std::f64::consts::E),
                ("nll_loss", 2.5),
                ("grad_norm", 13.25),
                ("learning_rate", 8e-6),
                ("rewards/accuracies", 0.5),
                ("rewards/chosen", -0.125),
                ("logps/chosen", -25.0),
                ("log_odds_ratio", -std::f64::consts::LN_2),
            ],
        ),
        entry(
            2,
            0.5,
            &[
                ("loss", 1.5),
                ("nll_loss", 1.25),
                ("grad_norm", 7.0),
                ("learning_rate", 4e-6),
                ("rewards/accuracies", 0.75),
                ("rewards/chosen", -0.0625),
                ("logps/chosen", -12.5),
                ("log_odds_ratio", -0.5),
            ],
        ),
        entry(
            2,
            0.5,
            &[
                ("eval_loss", 1.75),
                ("eval_rewards/accuracies", 1.0),
                ("eval_logps/chosen", -10.0),
                ("eval_logps/rejected", -30.0),
            ],
        ),
    ]
}

fn write(path: &Path) {
    let mut writer = EventWriter::create_file(path, 1_700_000_000.0).unwrap();
    for (i, entry) in entries().iter().enumerate() {
        writer
            .log_entry_at(entry, 1_700_000_000.5 + i as f64)
            .unwrap();
    }
    writer.flush().unwrap();
}

#[test]
fn the_writer_still_writes_the_file_tensorboard_read() {
    let committed = fixture_dir().join(FIXTURE);
    if std::env::var_os("ORPO_WRITE_FIXTURES").is_some() {
        write(&committed);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FIXTURE);
    write(&path);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&committed).expect("the committed event file"),
        "the event file differs from the one tensorboard read (tests/fixtures/tensorboard)"
    );
}

#[test]
fn scalars_read_back_as_tensorboard_read_them() {
    let events = read_events(&fixture_dir().join(FIXTURE)).unwrap();
    assert_eq!(events[0].file_version.as_deref(), Some(FILE_VERSION));
    assert_eq!(events[0].wall_time, 1_700_000_000.0);
    // tag → [(step, value, wall_time)], as the Python reader returned them.
    let text = std::fs::read_to_string(fixture_dir().join("tensorboard_scalars.json")).unwrap();
    let python: BTreeMap<String, Vec<(i64, f64, f64)>> = serde_json::from_str(&text).unwrap();
    let mut ours: BTreeMap<String, Vec<(i64, f64, f64)>> = BTreeMap::new();
    for event in &events[1..] {
        assert!(event.file_version.is_none());
        for (tag, value) in &event.scalars {
            ours.entry(tag.clone())
                .or_default()
                .push((event.step, *value as f64, event.wall_time));
        }
    }
    assert_eq!(ours, python);
    // Every logged metric is there under transformers' names, at its step.
    let mut expected: Vec<String> = Vec::new();
    for entry in entries() {
        for name in entry.values.keys() {
            expected.push(orpo_train::tensorboard::tensorboard_tag(name));
        }
    }
    expected.push("train/epoch".into());
    for tag in &expected {
        assert!(
            python.contains_key(tag),
            "{tag} missing: {:?}",
            python.keys()
        );
    }
    assert_eq!(python["eval/loss"], [(2, 1.75, 1_700_000_002.5)]);
    assert_eq!(python["train/epoch"].len(), 3);
    assert_eq!(python["train/loss"][0].1, std::f32::consts::E as f64);
}
