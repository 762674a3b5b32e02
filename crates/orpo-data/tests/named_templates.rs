//! The `chat_template` key's named templates are TRL's / the model repositories' own text, and
//! render conversations exactly as `transformers`' `apply_chat_template` does with them
//! (fixture by `scripts/make_named_template_fixtures.py`); a value is a template, a name or a
//! file.

mod common;

use std::collections::BTreeMap;

use common::*;
use orpo_data::{ChatTemplate, Message, NAMED_TEMPLATES, template_source};
use serde_json::Value;

fn fixture() -> Value {
    let path = repo_root().join("tests/fixtures/data/named_templates.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn named_templates_render_like_transformers() {
    let fx = fixture();
    let special: BTreeMap<String, String> =
        serde_json::from_value(fx["special_tokens"].clone()).unwrap();
    let convs: Vec<Vec<Message>> = serde_json::from_value(fx["conversations"].clone()).unwrap();
    for name in ["chatml", "llama3", "zephyr", "gemma", "phi3"] {
        assert_eq!(
            template_source(name).unwrap(),
            fx["templates"][name].as_str().unwrap(),
            "{name}: not the reference text"
        );
    }
    let mut checked = 0;
    for case in fx["cases"].as_array().unwrap() {
        let name = case["template"].as_str().unwrap();
        let t = ChatTemplate::new(&template_source(name).unwrap(), special.clone()).unwrap();
        let conv = &convs[case["conversation"].as_u64().unwrap() as usize];
        let got = t.render(conv, case["add_generation_prompt"].as_bool().unwrap());
        match (&case["output"], &case["error"]) {
            (Value::String(want), _) => assert_eq!(got.as_deref(), Ok(want.as_str()), "{case}"),
            (_, Value::String(err)) => {
                let msg = got.unwrap_err();
                assert!(msg.contains(err.as_str()), "{name}: {msg} vs {err}");
            }
            _ => unreachable!(),
        }
        checked += 1;
    }
    assert_eq!(checked, 30);
    assert_eq!(NAMED_TEMPLATES.len(), 5);
}

#[test]
fn template_values_are_templates_files_or_names() {
    let inline = "{{ messages[0]['content'] }}";
    assert_eq!(template_source(inline).unwrap(), inline);
    let file = std::env::temp_dir().join(format!("orpo-named-{}.jinja", std::process::id()));
    std::fs::write(&file, "{% for m in messages %}{{ m.role }}{% endfor %}").unwrap();
    assert_eq!(
        template_source(file.to_str().unwrap()).unwrap(),
        "{% for m in messages %}{{ m.role }}{% endfor %}"
    );
    std::fs::remove_file(&file).unwrap();
    let err = template_source("chatmll").unwrap_err().to_string();
    assert!(
        err.contains("chatmll") && err.contains("chatml, llama3"),
        "{err}"
    );
}
