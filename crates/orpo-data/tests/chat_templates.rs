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
