//! minijinja renders well-known chat templates exactly as `transformers`' `apply_chat_template`
//! (fixtures by `scripts/make_template_fixtures.py`).

mod common;

use std::collections::BTreeMap;

use common::*;
use orpo_data::{ChatTemplate, Message};
use serde_json::Value;

#[test]
fn templates_render_like_transformers() {
    let path = repo_root().join("tests/fixtures/data/chat_templates.json");
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let special: BTreeMap<String, String> =
        serde_json::from_value(fx["special_tokens"].clone()).unwrap();
    let convs: Vec<Vec<Message>> = serde_json::from_value(fx["conversations"].clone()).unwrap();
    let mut checked = 0;
    for case in fx["cases"].as_array().unwrap() {
        let name = case["template"].as_str().unwrap();
        let src = fx["templates"][name].as_str().unwrap();
        let t = ChatTemplate::new(src, special.clone()).unwrap();
        let conv = &convs[case["conversation"].as_u64().unwrap() as usize];
        let agp = case["add_generation_prompt"].as_bool().unwrap();
        let got = t.render(conv, agp);
        match (&case["output"], &case["error"]) {
            (Value::String(want), _) => {
                assert_eq!(got.as_deref(), Ok(want.as_str()), "{name} {case}")
            }
            (_, Value::String(err)) => {
                let msg = got.unwrap_err();
                assert!(msg.contains(err.as_str()), "{name}: {msg} vs {err}");
            }
            _ => unreachable!(),
        }
        checked += 1;
    }
    assert_eq!(checked, 36);
}

/// Chat templates come from untrusted model repositories: they run in minijinja with no loader,
/// so `include`, `import`, `from … import` and `extends` cannot read files, and no function or
/// filter reaches the file system or the network.
#[test]
fn templates_cannot_read_files() {
    let secret = std::env::temp_dir().join(format!("orpo-template-secret-{}", std::process::id()));
    std::fs::write(&secret, "SECRET").unwrap();
    let path = secret.display().to_string();
    let messages = [Message::new("user", "hi")];
    for source in [
        format!("{{% include '{path}' %}}"),
        format!("{{% include '{path}' ignore missing %}}x"),
        format!("{{% import '{path}' as m %}}{{{{ m }}}}"),
        format!("{{% from '{path}' import x %}}{{{{ x }}}}"),
        format!("{{% extends '{path}' %}}"),
        "{% include 'Cargo.toml' %}".to_string(),
        "{{ open('/etc/passwd') }}".to_string(),
        "{{ '/etc/passwd' | read }}".to_string(),
        "{{ range(10**9) | list | length }}".to_string(),
    ] {
        match ChatTemplate::new(&source, BTreeMap::new()) {
            Err(e) => assert!(!e.to_string().contains("SECRET"), "{source}: {e}"),
            Ok(t) => match t.render(&messages, false) {
                Err(e) => assert!(!e.contains("SECRET"), "{source}: {e}"),
                Ok(out) => {
                    assert!(!out.contains("SECRET"), "{source} read the file");
                    // Only `ignore missing` may render, and then to nothing from the file.
                    assert_eq!(out, "x", "{source}");
                }
            },
        }
    }
    std::fs::remove_file(&secret).unwrap();
}
