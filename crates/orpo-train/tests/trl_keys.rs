//! Every key TRL's own parser accepts for ORPO (tests/fixtures/config/trl_keys.json, dumped from
//! the real packages by scripts/dump_trl_config_keys.py: ORPOConfig with transformers'
//! TrainingArguments, ModelConfig and ScriptArguments, TRL 1.x and 0.2x) parses, with TRL's
//! default as its value; and the key table of docs/config.md is the one the parser uses.

use orpo_train::OrpoConfig;
use orpo_train::config::{KEYS, KeyKind, keys};

fn fixture() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/config/trl_keys.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
}

/// `(version, key, TRL's default)` for every key of every version and dataclass.
fn trl_keys() -> Vec<(String, String, serde_json::Value)> {
    let mut out = Vec::new();
    for (version, groups) in fixture().as_object().expect("versions") {
        for group in ["ORPOConfig", "ModelConfig", "ScriptArguments"] {
            for (key, default) in groups[group].as_object().expect(group) {
                out.push((version.clone(), key.clone(), default.clone()));
            }
        }
    }
    out
}

#[test]
fn the_fixture_holds_trl_1_and_0_2x() {
    let versions: Vec<String> = fixture().as_object().unwrap().keys().cloned().collect();
    assert!(
        versions.iter().any(|v| v.starts_with("trl-1.")),
        "{versions:?}"
    );
    assert!(
        versions.iter().any(|v| v.starts_with("trl-0.2")),
        "{versions:?}"
    );
    // Keys each side has that the other lacks, so both are really there.
    let keys = trl_keys();
    assert!(
        keys.iter()
            .any(|(v, k, _)| v.starts_with("trl-0.") && k == "max_prompt_length")
    );
    assert!(
        keys.iter()
            .any(|(v, k, _)| v.starts_with("trl-1.") && k == "train_sampling_strategy")
    );
    assert!(keys.len() > 250, "{}", keys.len());
}

#[test]
fn every_trl_key_parses_with_its_default() {
    let mut failures = Vec::new();
    for (version, key, default) in trl_keys() {
        let mut map = serde_yaml::Mapping::new();
        let value: serde_yaml::Value = serde_yaml::to_value(&default).unwrap();
        map.insert(key.clone().into(), value);
        let yaml = serde_yaml::to_string(&map).unwrap();
        if let Err(e) = OrpoConfig::from_yaml_str(&yaml, "c.yaml") {
            failures.push(format!("{version} {key}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_whole_trl_config_parses_and_names_the_ignored_keys_once() {
    for groups in fixture().as_object().unwrap().values() {
        let mut map = serde_yaml::Mapping::new();
        for group in ["ORPOConfig", "ModelConfig", "ScriptArguments"] {
            for (key, default) in groups[group].as_object().unwrap() {
                map.insert(key.clone().into(), serde_yaml::to_value(default).unwrap());
            }
        }
        let yaml = serde_yaml::to_string(&map).unwrap();
        let config = OrpoConfig::from_yaml_str(&yaml, "c.yaml").unwrap();
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        for key in ["deepspeed", "dataloader_num_workers", "push_to_hub"] {
            assert!(warnings[0].contains(key), "{key}: {}", warnings[0]);
        }
        for key in [
            "learning_rate",
            "optim",
            "eval_strategy",
            "dataset_name",
            "report_to",
        ] {
            assert!(
                !config.provenance.ignored_keys.iter().any(|k| k == key),
                "{key} acts"
            );
        }
    }
}

#[test]
fn every_table_key_is_a_trl_key_or_acts() {
    let trl: std::collections::BTreeSet<String> =
        trl_keys().into_iter().map(|(_, k, _)| k).collect();
    for key in KEYS {
        if !matches!(key.kind, KeyKind::Acts | KeyKind::Alias(_)) {
            assert!(
                trl.contains(key.name),
                "`{}` is in the table but no TRL key",
                key.name
            );
        }
    }
}

#[test]
fn the_table_names_every_config_field_and_nothing_twice() {
    let value = serde_yaml::to_value(OrpoConfig::default()).unwrap();
    let fields: Vec<&str> = value
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    for field in &fields {
        assert!(
            KEYS.iter()
                .any(|k| k.name == *field && k.kind == KeyKind::Acts),
            "field `{field}` has no row in crates/orpo-train/src/config/keys.rs"
        );
    }
    for key in KEYS {
        if key.kind == KeyKind::Acts && key.name != "dtype" {
            assert!(
                fields.contains(&key.name),
                "`{}` acts but is no field",
                key.name
            );
        }
        if let KeyKind::Alias(target) = key.kind {
            assert!(
                keys::lookup(target).is_some(),
                "alias of unknown `{target}`"
            );
        }
        assert_eq!(
            KEYS.iter().filter(|k| k.name == key.name).count(),
            1,
            "{}",
            key.name
        );
    }
}

#[test]
fn docs_key_table_is_the_parsers() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
    let docs = std::fs::read_to_string(path).expect("docs/config.md");
    let begin = "<!-- keys:begin (generated: orpo config --markdown) -->\n";
    let end = "<!-- keys:end -->";
    let start = docs.find(begin).expect("begin marker") + begin.len();
    let stop = docs.find(end).expect("end marker");
    let expected = keys::markdown_table();
    assert!(
        docs[start..stop] == expected,
        "docs/config.md's key table differs from the parser's; regenerate it with \
         `orpo config --markdown`:\n{expected}"
    );
}

#[test]
fn orpo_config_listing_parses_to_the_defaults() {
    let text = keys::yaml_listing();
    let parsed = OrpoConfig::from_yaml_str(&text, "listing").unwrap();
    assert_eq!(parsed, OrpoConfig::default());
    assert!(parsed.provenance.ignored_keys.is_empty());
    for key in KEYS {
        assert!(
            text.contains(&format!("{}: ", key.name)),
            "{} not listed",
            key.name
        );
    }
}

#[test]
fn the_smol_course_recipe_reads_unchanged() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/config/smol-course-orpo.yaml"
    );
    let mut config = OrpoConfig::from_yaml_file(path).unwrap();
    assert_eq!(
        config.dataset.as_deref(),
        Some("trl-lib/ultrafeedback_binarized")
    );
    assert_eq!(config.optim, "adamw_torch");
    assert_eq!(config.max_prompt_length, 512);
    assert_eq!(
        config.provenance.ignored_keys,
        [
            "push_to_hub",
            "hub_model_id",
            "dataloader_num_workers",
            "remove_unused_columns"
        ]
    );
    // `report_to: none` acts: no TensorBoard file.
    assert!(!config.report_to.tensorboard());
    // 1 epoch of 1000 steps: evaluate every 200, save every 500.
    config.resolve_for_run(1000);
    assert_eq!((config.eval_steps, config.save_steps), (Some(200), 500));
    // `--set max_length=256`, as TRL 1.x accepts it: the prompt gets half.
    let short = OrpoConfig::from_yaml_file(path)
        .unwrap()
        .apply_overrides(&["max_length=256".into(), "max_completion_length=null".into()])
        .unwrap();
    assert_eq!(short.max_prompt_length, 128);
}
