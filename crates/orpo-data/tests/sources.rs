//! File discovery, splits and formats.

mod common;

use common::*;
use orpo_data::{
    Content, DataConfig, DataError, Message, PreferenceDataset, PromptMode, list_splits,
    select_split,
};

#[test]
fn hugging_face_layout_with_named_splits_and_shards() {
    let dir = temp_dir("hf");
    good_parquet(&dir.join("data/train_prefs-00000-of-00002.parquet"), 30);
    good_parquet(&dir.join("data/train_prefs-00001-of-00002.parquet"), 20);
    good_parquet(&dir.join("data/test_prefs-00000-of-00001.parquet"), 5);
    write_text(&dir.join("README.md"), "# card\n");
    write_text(&dir.join("tokenizer/tokenizer.json"), "{}");
    let splits = list_splits(&dir).unwrap();
    let names: Vec<_> = splits.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["test_prefs", "train_prefs"]);
    assert_eq!(splits[1].files.len(), 2);

    let train = PreferenceDataset::load(&dir, Some("train_prefs"), &DataConfig::default()).unwrap();
    assert_eq!(train.len(), 50);
    assert_eq!(train.split(), "train_prefs");
    // shard order is kept, and origins point at the right file and row
    let o = train.origin(35);
    assert!(o.file.ends_with("train_prefs-00001-of-00002.parquet"));
    assert_eq!(o.row, 5);

    let err =
        PreferenceDataset::load(&dir, Some("validation"), &DataConfig::default()).unwrap_err();
    assert!(matches!(err, DataError::UnknownSplit { .. }), "{err}");
    assert!(err.to_string().contains("test_prefs, train_prefs"), "{err}");
    let err = select_split(&dir, None).unwrap_err();
    assert!(matches!(err, DataError::AmbiguousSplit { .. }), "{err}");
}

#[test]
fn folder_of_shards_and_single_files() {
    let dir = temp_dir("shards");
    good_parquet(&dir.join("part-0.parquet"), 10);
    good_parquet(&dir.join("part-1.parquet"), 7);
    let ds = PreferenceDataset::load(&dir, None, &DataConfig::default()).unwrap();
    assert_eq!((ds.len(), ds.split()), (17, "train"));
    // a single plain file serves whichever split is asked for
    let one = PreferenceDataset::load(
        dir.join("part-1.parquet"),
        Some("test"),
        &DataConfig::default(),
    )
    .unwrap();
    assert_eq!(one.len(), 7);
    // split folders
    let dir2 = temp_dir("splitdirs");
    good_parquet(&dir2.join("train/0.parquet"), 4);
    write_text(
        &dir2.join("test/0.jsonl"),
        "{\"prompt\": \"p\", \"chosen\": \" a\", \"rejected\": \" b\"}\n",
    );
    let names: Vec<_> = list_splits(&dir2)
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["test", "train"]);
    let t = PreferenceDataset::load(&dir2, None, &DataConfig::default()).unwrap();
    assert_eq!(t.len(), 4);
    let err = PreferenceDataset::load(temp_dir("none"), None, &DataConfig::default()).unwrap_err();
    assert!(matches!(err, DataError::NoFiles { .. }));
}

#[test]
fn bundled_datasets_standard_and_conversational() {
    let root = repo_root().join("datasets");
    let std_train = PreferenceDataset::load(
        root.join("arith-prefs"),
        Some("train"),
        &DataConfig::default(),
    )
    .unwrap();
    let std_test = PreferenceDataset::load(
        root.join("arith-prefs"),
        Some("test"),
        &DataConfig::default(),
    )
    .unwrap();
    assert_eq!((std_train.len(), std_test.len()), (3000, 300));
    let chat = PreferenceDataset::load(
        root.join("arith-prefs-chat"),
        Some("test"),
        &DataConfig::default(),
    )
    .unwrap();
    assert_eq!(chat.len(), 300);
    // the implicit prompt is the shared user turn
    let ex = &chat.examples()[0];
    let Content::Messages(p) = &ex.prompt else {
        panic!()
    };
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].role, "user");
    let Content::Messages(c) = &ex.chosen else {
        panic!()
    };
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].role, "assistant");
    // same pairs as the standard variant
    let Content::Text(sp) = &std_test.examples()[0].prompt else {
        panic!()
    };
    assert_eq!(&p[0].content, sp);
}

#[test]
fn configurable_columns_json_string_messages_and_prompt_modes() {
    let dir = temp_dir("cols");
    let f = dir.join("d.parquet");
    write_parquet(
        &f,
        vec![
            (
                "question",
                strings(&[Some(r#"[{"role": "user", "content": "hi"}]"#)]),
            ),
            (
                "good",
                strings(&[Some(r#"[{"role": "assistant", "content": "hello"}]"#)]),
            ),
            (
                "bad",
                strings(&[Some(r#"[{"role": "assistant", "content": "go away"}]"#)]),
            ),
            ("ignored", strings(&[None])),
        ],
    );
    let cfg = DataConfig {
        prompt_column: "question".into(),
        chosen_column: "good".into(),
        rejected_column: "bad".into(),
        ..Default::default()
    };
    let ds = PreferenceDataset::load(&f, None, &cfg).unwrap();
    let ex = &ds.examples()[0];
    assert_eq!(
        ex.prompt,
        Content::Messages(vec![Message::new("user", "hi")])
    );
    assert_eq!(
        ex.rejected,
        Content::Messages(vec![Message::new("assistant", "go away")])
    );

    // an explicit prompt column that is missing is an error
    let dir2 = temp_dir("implicit");
    let g = dir2.join("d.jsonl");
    write_text(
        &g,
        "{\"chosen\": \"Q: 1+1? A: 2\", \"rejected\": \"Q: 1+1? A: 3\"}\n",
    );
    let explicit = DataConfig {
        prompt_mode: PromptMode::Explicit,
        ..Default::default()
    };
    let err = PreferenceDataset::load(&g, None, &explicit).unwrap_err();
    assert!(err.to_string().contains("prompt"), "{err}");
    let ds = PreferenceDataset::load(&g, None, &DataConfig::default()).unwrap();
    assert_eq!(ds.examples()[0].prompt, Content::Text("Q: 1+1? A:".into()));
    assert_eq!(ds.examples()[0].chosen, Content::Text(" 2".into()));
}
