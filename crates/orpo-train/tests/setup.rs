//! `orpo_train::setup`: a config resolved into devices, model, tokenizer and splits as `orpo
//! train` resolves it, and `OrpoTrainer::from_config` equal to building the trainer by hand.

mod common;

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use orpo_data::{DataConfig, PreferenceDataset, PreferenceTokenizer};
use orpo_model::{DecoderConfig, DecoderForCausalLM};
use orpo_train::setup::{Remote, RemoteKind, Setup, SetupError};
use orpo_train::{OrpoConfig, OrpoTrainer};

use common::root;

fn tokenizer_dir() -> PathBuf {
    root().join("datasets/arith-prefs/tokenizer")
}

/// A fresh tiny model, the bundled tokenizer and the chat dataset (a `train` and a `test`
/// split), two steps.
fn config(out: &Path) -> OrpoConfig {
    OrpoConfig {
        output_dir: out.display().to_string(),
        model_config: Some(
            root()
                .join("tests/fixtures/tiny-model/config.json")
                .display()
                .to_string(),
        ),
        tokenizer_name_or_path: Some(tokenizer_dir().display().to_string()),
        dataset: Some(
            root()
                .join("datasets/arith-prefs-chat")
                .display()
                .to_string(),
        ),
        per_device_train_batch_size: 4,
        max_steps: 2,
        max_length: 64,
        max_prompt_length: 48,
        ..Default::default()
    }
}

fn message(e: SetupError) -> (bool, String) {
    let usage = matches!(e, SetupError::Usage(_));
    (usage, format!("{:#}", e.into_inner()))
}

#[test]
fn from_config_builds_the_trainer_new_builds() {
    let out = tempfile::tempdir().unwrap();
    let config = config(out.path());
    let setup = Setup::new("c.yaml");
    let from_config = OrpoTrainer::from_config(&config, vec![Device::flex()], &setup).unwrap();

    let device = orpo_train::training_device(Device::flex(), &config).unwrap();
    device.seed(config.seed);
    let model_config = DecoderConfig::from_file(config.model_config.as_ref().unwrap()).unwrap();
    let model = DecoderForCausalLM::init(&model_config, &device);
    let tokenizer = PreferenceTokenizer::from_dir(tokenizer_dir()).unwrap();
    let load = |split| {
        PreferenceDataset::load(
            root().join("datasets/arith-prefs-chat"),
            Some(split),
            &DataConfig::default(),
        )
        .unwrap()
    };
    let by_hand = OrpoTrainer::new(model, config.clone(), load("train"), tokenizer)
        .unwrap()
        .with_eval_dataset(load("test"))
        .unwrap();

    assert_eq!(from_config.train_report, by_hand.train_report);
    assert_eq!(from_config.eval_report, by_hand.eval_report);
    assert!(
        from_config.eval_report.is_some(),
        "the test split is the eval split"
    );
    assert_eq!(from_config.total_steps(), by_hand.total_steps());
    // Same seed, same device: the same fresh weights.
    let weights = |t: &OrpoTrainer<DecoderForCausalLM>| {
        t.model()
            .head_weight()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(weights(&from_config), weights(&by_hand));
}

#[test]
fn a_single_file_is_the_training_split_only() {
    let out = tempfile::tempdir().unwrap();
    let file = root().join("datasets/arith-prefs-chat/data/train-00000-of-00001.parquet");
    let config = OrpoConfig {
        dataset: Some(file.display().to_string()),
        ..config(out.path())
    };
    let datasets = Setup::new("c.yaml").datasets(&config).unwrap();
    assert_eq!(datasets.path, file);
    assert!(datasets.eval.is_none());
    assert!(!datasets.train.is_empty());
}

#[test]
fn missing_keys_are_usage_errors_naming_the_config() {
    let out = tempfile::tempdir().unwrap();
    let setup = Setup::new("c.yaml");
    let device = Device::flex().autodiff();

    let no_model = OrpoConfig {
        model_config: None,
        ..config(out.path())
    };
    let (usage, text) = message(setup.model(&no_model, &device).err().unwrap());
    assert!(usage, "{text}");
    assert!(
        text.starts_with("c.yaml: set `model_name_or_path`"),
        "{text}"
    );

    let no_tokenizer = OrpoConfig {
        tokenizer_name_or_path: None,
        ..config(out.path())
    };
    let (usage, text) = message(setup.tokenizer(&no_tokenizer, None).err().unwrap());
    assert!(
        usage && text == "c.yaml: set `tokenizer_name_or_path`",
        "{text}"
    );

    let no_dataset = OrpoConfig {
        dataset: None,
        ..config(out.path())
    };
    let (usage, text) = message(setup.datasets(&no_dataset).err().unwrap());
    assert!(
        usage && text == "c.yaml: set `dataset` (or `datasets`)",
        "{text}"
    );

    // A file where a directory is expected.
    let file = root().join("tests/fixtures/tiny-model/config.json");
    let (usage, text) = message(
        setup
            .dir(file.to_str().unwrap(), "model_name_or_path", None)
            .unwrap_err(),
    );
    assert!(
        usage && text.ends_with("is a file; expected a directory"),
        "{text}"
    );
    // Neither a local path nor a remote name.
    let (usage, text) = message(setup.dir("owner/name", "--model", None).unwrap_err());
    assert!(
        usage && text == "--model `owner/name`: no such directory",
        "{text}"
    );
}

/// Answers every name of the form `hub:<dir>` with `<dir>`, recording what it was asked.
struct Recording(RefCell<Vec<(String, RemoteKind, Option<String>)>>);

impl Remote for Recording {
    fn resolve(
        &self,
        name: &str,
        kind: RemoteKind,
        _what: &str,
        revision: Option<&str>,
    ) -> Option<Result<PathBuf, SetupError>> {
        let dir = name.strip_prefix("hub:")?;
        self.0
            .borrow_mut()
            .push((name.into(), kind, revision.map(str::to_string)));
        Some(Ok(PathBuf::from(dir)))
    }
}

#[test]
fn names_that_are_not_local_paths_go_to_the_remote() {
    let out = tempfile::tempdir().unwrap();
    let remote = Recording(RefCell::new(Vec::new()));
    let setup = Setup::new("c.yaml").with_remote(&remote);
    let tokenizer = format!("hub:{}", tokenizer_dir().display());
    let dataset = format!("hub:{}", root().join("datasets/arith-prefs-chat").display());
    let config = OrpoConfig {
        tokenizer_name_or_path: Some(tokenizer.clone()),
        model_revision: Some("v1".into()),
        dataset: Some(dataset.clone()),
        ..config(out.path())
    };
    let (_, dir) = setup.tokenizer(&config, None).unwrap();
    assert_eq!(dir, tokenizer_dir());
    let datasets = setup.datasets(&config).unwrap();
    assert!(datasets.eval.is_some());
    assert_eq!(
        *remote.0.borrow(),
        vec![
            (tokenizer, RemoteKind::Model, Some("v1".to_string())),
            // TRL's dataset keys have no revision.
            (dataset, RemoteKind::Dataset, None),
        ]
    );
    // Local paths never reach the remote.
    let local = Setup::new("c.yaml").with_remote(&remote);
    local.tokenizer(&self::config(out.path()), None).unwrap();
    assert_eq!(remote.0.borrow().len(), 2);
}

/// A `chat_template` that replaces the tokenizer's is the one checkpoints and `final/` carry:
/// reloaded from them, the tokenizer renders prompts as the run did.
#[test]
fn a_replaced_chat_template_is_saved_with_the_model() {
    let out = tempfile::tempdir().unwrap();
    let config = OrpoConfig {
        chat_template: Some("zephyr".into()),
        save_steps: 1,
        ..config(out.path())
    };
    let zephyr = orpo_data::template_source("zephyr").unwrap();
    let own = orpo_data::PreferenceTokenizer::from_dir(tokenizer_dir()).unwrap();
    assert_ne!(own.chat_template().source(), zephyr);
    let setup = Setup::new("c.yaml");
    OrpoTrainer::from_config(&config, vec![Device::flex()], &setup)
        .unwrap()
        .train()
        .unwrap();
    for dir in ["checkpoint-1", "final"] {
        let dir = out.path().join(dir);
        let saved = orpo_data::PreferenceTokenizer::from_dir(&dir).unwrap();
        assert_eq!(saved.chat_template().source(), zephyr, "{}", dir.display());
        let jinja = std::fs::read_to_string(dir.join("chat_template.jinja")).unwrap();
        assert_eq!(jinja, zephyr, "{}", dir.display());
    }
}
