//! `--set chat_template=...` reaches the binary's data commands: a named template changes the
//! rendered prompts, an unknown value exits 2 naming the key.

mod common;
use common::orpo;

fn prompt_tokens(extra: &[&str]) -> (i32, f64, String) {
    let mut args = vec![
        "data",
        "inspect",
        "--dataset",
        "datasets/arith-prefs-chat",
        "--tokenizer",
        "datasets/arith-prefs/tokenizer",
        "--split",
        "test",
        "--json",
    ];
    args.extend_from_slice(extra);
    let (code, stdout, err) = orpo(&args);
    let mean = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["test"]["prompt_tokens"]["mean"].as_f64())
        .unwrap_or(f64::NAN);
    (code, mean, err)
}

#[test]
fn chat_template_overrides_the_tokenizers_in_inspect() {
    let (code, own, err) = prompt_tokens(&[]);
    assert_eq!(code, 0, "{err}");
    // Zephyr's `<|user|>\n...</s>\n<|assistant|>\n` is longer than the tokenizer's ChatML here
    let (code, zephyr, err) = prompt_tokens(&["--set", "chat_template=zephyr"]);
    assert_eq!(code, 0, "{err}");
    assert!(zephyr > own, "zephyr {zephyr} vs own {own}");
    let (code, _, err) = prompt_tokens(&["--set", "chat_template=lama3"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `chat_template`") && err.contains("lama3"),
        "{err}"
    );
}
