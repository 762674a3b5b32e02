//! Any text as a training config, and its lines as `--set KEY=VALUE` overrides: parsing and
//! validation must return errors, never panic; a config that parses must survive a YAML round
//! trip unchanged and hold only finite numbers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orpo_train::OrpoConfig;

fn check(config: &OrpoConfig) {
    for (key, value) in [
        ("learning_rate", config.learning_rate),
        ("num_train_epochs", config.num_train_epochs),
        ("warmup_ratio", config.warmup_ratio),
        ("weight_decay", config.weight_decay),
        ("adam_beta1", config.adam_beta1),
        ("adam_beta2", config.adam_beta2),
        ("adam_epsilon", config.adam_epsilon),
        ("max_grad_norm", config.max_grad_norm),
        ("beta", config.beta),
        ("orpo_beta", config.orpo_beta),
        ("lambda", config.lambda()),
    ] {
        assert!(value.is_finite(), "a validated config has {key} = {value}");
    }
    let text = serde_yaml::to_string(config).expect("a parsed config serialises");
    let again = OrpoConfig::from_yaml_str(&text, "round-trip")
        .unwrap_or_else(|e| panic!("a parsed config must parse again: {e}\n{text}"));
    assert_eq!(&again, config, "YAML round trip changed the config:\n{text}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = OrpoConfig::from_yaml_str(text, "fuzz.yaml") {
        check(&config);
    }
    let overrides: Vec<String> = text.lines().map(str::to_string).collect();
    if let Ok(config) = OrpoConfig::default().apply_overrides(&overrides) {
        check(&config);
    }
});
