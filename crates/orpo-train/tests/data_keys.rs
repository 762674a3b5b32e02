//! The data keys TRL and axolotl users bring: `test_size` (`val_set_size`, `test_split_size`),
//! the `datasets` mixture (TRL 1.x's `get_dataset`, fixture by
//! `scripts/make_mixture_fixture.py`) and `chat_template`, resolved by `orpo_train::setup`.

mod common;

use std::path::PathBuf;

use orpo_data::{Content, PreferenceDataset};
use orpo_train::OrpoConfig;
use orpo_train::config::TestSize;
use orpo_train::setup::{Setup, SetupError};

use common::root;

fn yaml(text: &str) -> Result<OrpoConfig, String> {
    OrpoConfig::from_yaml_str(text, "c.yaml").map_err(|e| e.to_string())
}

fn train_file() -> PathBuf {
    root().join("datasets/arith-prefs/data/train-00000-of-00001.parquet")
}

fn prompts(d: &PreferenceDataset) -> Vec<String> {
    d.examples()
        .iter()
        .map(|e| match &e.prompt {
            Content::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn usage_text(e: SetupError) -> String {
    assert!(matches!(e, SetupError::Usage(_)), "{e:?}");
    format!("{:#}", e.into_inner())
}

#[test]
fn test_size_holds_out_a_seeded_part_of_train() {
    let file = train_file().display().to_string();
    let setup = Setup::new("c.yaml");
    let all = setup
        .datasets(&yaml(&format!("dataset: {file}\n")).unwrap())
        .unwrap();
    assert!(all.eval.is_none());
    let n = all.train.len();

    // a fraction: ceil(0.1 n) held out, as datasets' train_test_split
    let c = yaml(&format!("dataset: {file}\ntest_size: 0.1\n")).unwrap();
    assert_eq!(c.test_size, Some(TestSize::Fraction(0.1)));
    let d = setup.datasets(&c).unwrap();
    let eval = d.eval.as_ref().unwrap();
    let k = (0.1 * n as f64).ceil() as usize;
    assert_eq!((d.train.len(), eval.len()), (n - k, k));
    let mut joined: Vec<String> = prompts(&d.train).into_iter().chain(prompts(eval)).collect();
    let mut want = prompts(&all.train);
    joined.sort();
    want.sort();
    assert_eq!(joined, want, "each example in exactly one part");

    // axolotl's val_set_size and TRL's test_split_size are the same key; a count
    for key in ["val_set_size", "test_split_size"] {
        let c = yaml(&format!("dataset: {file}\n{key}: 25\nseed: 7\n")).unwrap();
        assert_eq!(c.test_size, Some(TestSize::Count(25)));
        let d = setup.datasets(&c).unwrap();
        assert_eq!(d.eval.as_ref().unwrap().len(), 25);
        assert_eq!(d.train.len(), n - 25);
    }
    // the seed picks the part
    let by_seed = |seed: u64| {
        let c = yaml(&format!("dataset: {file}\ntest_size: 25\nseed: {seed}\n")).unwrap();
        prompts(setup.datasets(&c).unwrap().eval.as_ref().unwrap())
    };
    assert_eq!(by_seed(7), by_seed(7));
    assert_ne!(by_seed(7), by_seed(8));

    // out of range
    for bad in ["0", "1.0", "-0.5", "1.5"] {
        let err = yaml(&format!("dataset: {file}\ntest_size: {bad}\n")).unwrap_err();
        assert!(err.contains("`test_size`"), "{bad}: {err}");
    }
    let c = yaml(&format!("dataset: {file}\ntest_size: {n}\n")).unwrap();
    let err = usage_text(setup.datasets(&c).err().unwrap());
    assert!(
        err.contains("`test_size`") && err.contains("no training"),
        "{err}"
    );
}

#[test]
fn test_size_with_a_test_split_names_both() {
    let dir = root().join("datasets/arith-prefs").display().to_string();
    let c = yaml(&format!("dataset: {dir}\ntest_size: 0.1\n")).unwrap();
    let err = usage_text(Setup::new("c.yaml").datasets(&c).err().unwrap());
    assert!(
        err.contains("`test_size`")
            && err.contains("`dataset_test_split`")
            && err.contains("`test`"),
        "{err}"
    );
    // a split name the dataset lacks: test_size applies
    let c = yaml(&format!(
        "dataset: {dir}\ntest_size: 10\ndataset_test_split: none\n"
    ))
    .unwrap();
    let d = Setup::new("c.yaml").datasets(&c).unwrap();
    assert_eq!(d.eval.unwrap().len(), 10);
}

#[test]
fn datasets_mix_as_trl_get_dataset() {
    let fx: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/data/mixture.json")).unwrap(),
    )
    .unwrap();
    let mut text = String::from("datasets:\n");
    for d in fx["datasets"].as_array().unwrap() {
        text += &format!(
            "  - path: {}\n    split: {}\n    fraction: {}\n",
            root().join(d["path"].as_str().unwrap()).display(),
            d["split"].as_str().unwrap(),
            d["fraction"]
        );
    }
    let c = yaml(&text).unwrap();
    let d = Setup::new("c.yaml").datasets(&c).unwrap();
    let want: Vec<String> = serde_json::from_value(fx["prompts"].clone()).unwrap();
    assert_eq!(prompts(&d.train), want);
    assert!(d.eval.is_none());
    assert_eq!(d.train.split(), "train");

    // no fractions: the datasets whole, one after the other; test_size applies to the mixture
    let file = train_file().display().to_string();
    let c = yaml(&format!(
        "datasets:\n  - path: {file}\n  - path: {file}\n    columns: [prompt, chosen, rejected]\ntest_size: 0.5\n"
    ))
    .unwrap();
    let d = Setup::new("c.yaml").datasets(&c).unwrap();
    let one = Setup::new("c.yaml")
        .datasets(&yaml(&format!("dataset: {file}\n")).unwrap())
        .unwrap()
        .train
        .len();
    assert_eq!(d.train.len() + d.eval.unwrap().len(), 2 * one);
}

#[test]
fn datasets_errors_name_the_key() {
    let file = train_file().display().to_string();
    let cases = [
        (
            format!("dataset_name: {file}\ndatasets:\n  - path: {file}\n"),
            "`datasets` and `dataset`",
        ),
        ("datasets: []\n".to_string(), "empty"),
        (
            format!("datasets:\n  - path: {file}\n    fraction: 0.5\n  - path: {file}\n"),
            "for every dataset or for none",
        ),
        (
            format!("datasets:\n  - path: {file}\n    fraction: 1.5\n"),
            "`datasets[0]`",
        ),
        (
            format!("datasets:\n  - path: {file}\n    name: en\n"),
            "Hub dataset configurations",
        ),
        (
            format!("datasets:\n  - path: {file}\n    columns: [prompt, chosen]\n"),
            "lacks `rejected`",
        ),
        (
            format!("datasets:\n  - path: {file}\n    data_fils: x\n"),
            "data_fils",
        ),
    ];
    for (text, want) in cases {
        let err = yaml(&text).unwrap_err();
        assert!(err.contains(want), "{text}: {err}");
    }
}

#[test]
fn chat_template_replaces_the_tokenizers() {
    let tok = root()
        .join("datasets/arith-prefs/tokenizer")
        .display()
        .to_string();
    let setup = Setup::new("c.yaml");
    let base = yaml(&format!("tokenizer_name_or_path: {tok}\n")).unwrap();
    let (own, _) = setup.tokenizer(&base, None).unwrap();
    for (value, want) in [
        (
            "llama3".to_string(),
            orpo_data::template_source("llama3").unwrap(),
        ),
        (
            "\"{{ messages[0]['content'] }}\"".to_string(),
            "{{ messages[0]['content'] }}".to_string(),
        ),
    ] {
        let c = yaml(&format!(
            "tokenizer_name_or_path: {tok}\nchat_template: {value}\n"
        ))
        .unwrap();
        let (t, _) = setup.tokenizer(&c, None).unwrap();
        assert_eq!(t.chat_template().source(), want);
        assert_ne!(t.chat_template().source(), own.chat_template().source());
    }
    let c = yaml(&format!(
        "tokenizer_name_or_path: {tok}\nchat_template: lama3\n"
    ))
    .unwrap();
    let err = usage_text(setup.tokenizer(&c, None).err().unwrap());
    assert!(
        err.contains("key `chat_template`") && err.contains("lama3"),
        "{err}"
    );
}
