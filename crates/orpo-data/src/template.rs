//! Jinja chat templates, run with minijinja following Hugging Face's `apply_chat_template`
//! conventions: variables `messages`, `add_generation_prompt`, `bos_token`, `eos_token`,
//! `pad_token`, `unk_token` (the tokenizer's special tokens as strings), `tools`/`documents`
//! (none), functions `raise_exception(msg)` and `strftime_now(fmt)`, a `tojson` filter that does
//! not escape HTML characters, Python string/dict methods (`.strip()`, `.startswith()`,
//! `.items()`, …), `trim_blocks` and `lstrip_blocks` on, loop controls enabled. The
//! `{% generation %}` markers of assistant-mask templates are ignored.

use std::collections::BTreeMap;

use minijinja::{Environment, Error, ErrorKind, Value, context};

use crate::error::{DataError, Result};
use crate::message::Message;

/// The ChatML template used when a tokenizer has none (as TRL's `setup_chat_format`).
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const NAME: &str = "chat_template";

/// Well-known chat templates by name, for the `chat_template` key: ChatML (TRL's
/// `setup_chat_format`), and the templates TRL 1.16 ships in `trl/chat_templates/` for Llama 3,
/// Gemma and Phi-3 (`templates/*.jinja`, copied unchanged), and Zephyr's
/// (HuggingFaceH4/zephyr-7b-beta's `tokenizer_config.json`).
pub const NAMED_TEMPLATES: &[(&str, &str)] = &[
    ("chatml", CHATML_TEMPLATE),
    ("llama3", include_str!("../templates/llama3.jinja")),
    ("zephyr", include_str!("../templates/zephyr.jinja")),
    ("gemma", include_str!("../templates/gemma.jinja")),
    ("phi3", include_str!("../templates/phi3.jinja")),
];

/// The template source a `chat_template` value stands for: the value itself when it contains
/// `{%` or `{{` (a template), one of [`NAMED_TEMPLATES`] by name, else a file to read (a
/// `.jinja`, `.j2` or `.txt` path). Anything else is an error naming the value and the known
/// names.
pub fn template_source(value: &str) -> Result<String> {
    if value.contains("{%") || value.contains("{{") {
        return Ok(value.to_string());
    }
    if let Some((_, src)) = NAMED_TEMPLATES.iter().find(|(n, _)| *n == value) {
        return Ok((*src).to_string());
    }
    let path = std::path::Path::new(value);
    if path.is_file() {
        return std::fs::read_to_string(path).map_err(|e| {
            DataError::Template(format!("chat_template: reading {}: {e}", path.display()))
        });
    }
    let names: Vec<&str> = NAMED_TEMPLATES.iter().map(|(n, _)| *n).collect();
    Err(DataError::Template(format!(
        "chat_template `{value}` is not a template (no `{{%` or `{{{{`), not a known name ({}) \
         and not a file",
        names.join(", ")
    )))
}

/// A compiled chat template plus the special tokens it may reference.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    special_tokens: BTreeMap<String, String>,
    source: String,
}

impl Clone for ChatTemplate {
    fn clone(&self) -> Self {
        ChatTemplate::new(&self.source, self.special_tokens.clone()).expect("compiled before")
    }
}

fn raise_exception(msg: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

fn tojson(value: Value, kwargs: minijinja::value::Kwargs) -> std::result::Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    // accepted and ignored like HF's defaults
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    let _: Option<Value> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let s = match indent {
        Some(n) => {
            let indent = vec![b' '; n];
            let fmt = serde_json::ser::PrettyFormatter::with_indent(&indent);
            let mut buf = Vec::new();
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(&value, &mut ser)
                .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
            String::from_utf8(buf).expect("json is utf-8")
        }
        // Python's json.dumps default separators: ", " and ": "; key order kept
        None => python_json(&value)?,
    };
    Ok(Value::from_safe_string(s))
}

fn python_json(v: &Value) -> std::result::Result<String, Error> {
    use minijinja::value::ValueKind;
    let err = |e: serde_json::Error| Error::new(ErrorKind::InvalidOperation, e.to_string());
    Ok(match v.kind() {
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = v
                .try_iter()?
                .map(|x| python_json(&x))
                .collect::<std::result::Result<_, _>>()?;
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let mut items = Vec::new();
            for k in v.try_iter()? {
                let val = v.get_item(&k)?;
                let key = match k.as_str() {
                    Some(s) => serde_json::to_string(s).map_err(err)?,
                    None => serde_json::to_string(&k.to_string()).map_err(err)?,
                };
                items.push(format!("{key}: {}", python_json(&val)?));
            }
            format!("{{{}}}", items.join(", "))
        }
        _ => serde_json::to_string(v).map_err(err)?,
    })
}

fn days_to_civil(z: i64) -> (i64, u32, u32) {
    // Howard Hinnant's civil_from_days
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `strftime_now(fmt)` for the common directives (%Y %m %d %e %B %b %H %M %S %%), UTC.
fn strftime_now(fmt: String) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d) = days_to_civil(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:>2}")),
            Some('B') => out.push_str(MONTHS[(m - 1) as usize]),
            Some('b') => out.push_str(&MONTHS[(m - 1) as usize][..3]),
            Some('H') => out.push_str(&format!("{:02}", sod / 3600)),
            Some('M') => out.push_str(&format!("{:02}", sod / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", sod % 60)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

fn strip_generation_tags(source: &str) -> String {
    let mut s = source.to_string();
    for tag in ["generation", "endgeneration"] {
        for (open, close) in [("{%-", "-%}"), ("{%-", "%}"), ("{%", "-%}"), ("{%", "%}")] {
            for space in [" ", ""] {
                let pat = format!("{open}{space}{tag}{space}{close}");
                s = s.replace(&pat, "");
            }
        }
    }
    s
}

impl ChatTemplate {
    /// Compiles a template. `special_tokens` maps variable names (`bos_token`, `eos_token`, …)
    /// to token strings; absent ones are undefined in the template (they render as "").
    pub fn new(source: &str, special_tokens: BTreeMap<String, String>) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME.to_string(), strip_generation_tags(source))
            .map_err(|e| DataError::Template(format!("{e:#}")))?;
        Ok(ChatTemplate {
            env,
            special_tokens,
            source: source.to_string(),
        })
    }

    /// The ChatML template (see [`CHATML_TEMPLATE`]).
    pub fn chatml(special_tokens: BTreeMap<String, String>) -> Self {
        ChatTemplate::new(CHATML_TEMPLATE, special_tokens).expect("ChatML template compiles")
    }

    /// The template source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders `messages` (HF `apply_chat_template(messages, tokenize=False,
    /// add_generation_prompt=...)`).
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> std::result::Result<String, String> {
        let tmpl = self.env.get_template(NAME).map_err(|e| e.to_string())?;
        let ctx = context! {
            messages => Value::from_serialize(messages),
            add_generation_prompt => add_generation_prompt,
            tools => Value::from(()),
            documents => Value::from(()),
            ..Value::from_serialize(&self.special_tokens)
        };
        tmpl.render(ctx).map_err(|e| format!("{e:#}"))
    }

    /// Renders with HF's `continue_final_message=True` (as `transformers` 5): the text is cut
    /// right after the content of the final message, so that a model continues it.
    pub fn render_continue_final(
        &self,
        messages: &[Message],
    ) -> std::result::Result<String, String> {
        const TAG: &str = "CONTINUE_FINAL_MESSAGE_TAG ";
        let Some(last) = messages.last() else {
            return Err("continue_final_message: the conversation is empty".into());
        };
        let mut tagged = messages.to_vec();
        tagged.last_mut().expect("not empty").content.push_str(TAG);
        let rendered = self.render(&tagged, false)?;
        if !rendered.contains(last.content.trim()) || !rendered.contains(TAG.trim()) {
            return Err(
                "continue_final_message: the final message does not appear in the rendered chat"
                    .into(),
            );
        }
        let loc = rendered.rfind(TAG.trim()).expect("checked");
        Ok(if rendered[loc..].starts_with(TAG) {
            rendered[..loc].to_string()
        } else {
            // the template trimmed the message's trailing spacing
            rendered[..loc].trim_end().to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_renders() {
        let t = ChatTemplate::chatml(BTreeMap::new());
        let m = [Message::new("user", "hi")];
        assert_eq!(
            t.render(&m, true).unwrap(),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn hf_conventions() {
        let src = "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') }}{% endif %}\n{{ m.content.strip() | upper }}{{ eos_token }}{% endfor %}{{ messages | tojson }}";
        let mut sp = BTreeMap::new();
        sp.insert("bos_token".into(), "<s>".into());
        sp.insert("eos_token".into(), "</s>".into());
        let t = ChatTemplate::new(src, sp).unwrap();
        let out = t.render(&[Message::new("user", " a<b ")], false).unwrap();
        assert_eq!(
            out,
            "<s>A<B</s>[{\"role\": \"user\", \"content\": \" a<b \"}]"
        );
        let err = t.render(&[Message::new("system", "x")], false).unwrap_err();
        assert!(err.contains("no system"), "{err}");
    }
}
