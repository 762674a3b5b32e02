//! Standard and conversational preference examples, implicit prompt extraction (TRL's
//! `maybe_extract_prompt`) and rendering to text (TRL's `maybe_apply_chat_template`).

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result, RowIssue, RowOrigin};
pub use crate::message::{Content, Message};
use crate::read::{Cell, RawRow};
use crate::template::ChatTemplate;

/// A validated preference example, prompt explicit (extracted from the shared prefix when the
/// dataset's prompt is implicit). `prompt`, `chosen` and `rejected` have the same format.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PreferenceExample {
    /// The prompt.
    pub prompt: Content,
    /// The preferred completion.
    pub chosen: Content,
    /// The dispreferred completion.
    pub rejected: Content,
}

/// A preference example rendered to text: what TRL's `tokenize_row` receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextExample {
    /// Prompt text (with the generation prompt for conversations).
    pub prompt: String,
    /// Chosen completion text (for conversations: the rendered text after the prompt).
    pub chosen: String,
    /// Rejected completion text.
    pub rejected: String,
}

pub(crate) fn bad(origin: &RowOrigin, column: &str, issue: RowIssue) -> DataError {
    DataError::BadRow {
        origin: origin.clone(),
        column: column.to_string(),
        issue,
    }
}

fn cell(origin: &RowOrigin, column: &str, c: Cell) -> Result<Content> {
    let c = c.map_err(|i| bad(origin, column, i))?;
    if c.is_empty() {
        return Err(bad(origin, column, RowIssue::Empty));
    }
    Ok(c)
}

/// TRL's `extract_prompt` on any comparable sequence; returns the split index (the length of
/// the shared prefix; the index rule of TRL is reproduced when one is a prefix of the other).
fn shared_prefix_len<T: PartialEq>(a: &[T], b: &[T], is_space: impl Fn(&T) -> bool) -> usize {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0;
    }
    let mut idx = n - 1; // Python's loop variable after a loop without break
    for i in 0..n {
        if a[i] != b[i] {
            idx = i;
            if i > 0 && is_space(&a[i - 1]) {
                idx -= 1;
            }
            break;
        }
    }
    idx
}

/// Extracts the shared prefix of `chosen` and `rejected` as the prompt (TRL's `extract_prompt`).
pub fn extract_prompt(chosen: &Content, rejected: &Content) -> Option<PreferenceExample> {
    match (chosen, rejected) {
        (Content::Text(c), Content::Text(r)) => {
            let cc: Vec<(usize, char)> = c.char_indices().collect();
            let rc: Vec<(usize, char)> = r.char_indices().collect();
            let cs: Vec<char> = cc.iter().map(|x| x.1).collect();
            let rs: Vec<char> = rc.iter().map(|x| x.1).collect();
            let idx = shared_prefix_len(&cs, &rs, |ch| *ch == ' ');
            if idx == 0 {
                return None;
            }
            let cb = cc.get(idx).map_or(c.len(), |x| x.0);
            let rb = rc.get(idx).map_or(r.len(), |x| x.0);
            Some(PreferenceExample {
                prompt: Content::Text(c[..cb].to_string()),
                chosen: Content::Text(c[cb..].to_string()),
                rejected: Content::Text(r[rb..].to_string()),
            })
        }
        (Content::Messages(c), Content::Messages(r)) => {
            let idx = shared_prefix_len(c, r, |_| false);
            if idx == 0 {
                return None;
            }
            Some(PreferenceExample {
                prompt: Content::Messages(c[..idx].to_vec()),
                chosen: Content::Messages(c[idx..].to_vec()),
                rejected: Content::Messages(r[idx..].to_vec()),
            })
        }
        _ => None,
    }
}

/// Validates a raw row and makes its prompt explicit.
pub(crate) fn example_from_row(row: RawRow) -> Result<PreferenceExample> {
    let origin = &row.origin;
    let chosen = cell(origin, "chosen", row.chosen)?;
    let rejected = cell(origin, "rejected", row.rejected)?;
    if chosen == rejected {
        return Err(bad(origin, "rejected", RowIssue::IdenticalPair));
    }
    let prompt = match row.prompt {
        Some(p) => Some(cell(origin, "prompt", p)?),
        None => None,
    };
    if chosen.is_conversational() != rejected.is_conversational() {
        return Err(bad(origin, "rejected", RowIssue::MixedFormats));
    }
    // TRL's maybe_extract_prompt: keep an explicit prompt of the same format as `chosen`.
    let ex = match prompt {
        Some(p) if p.is_conversational() == chosen.is_conversational() => PreferenceExample {
            prompt: p,
            chosen,
            rejected,
        },
        _ => extract_prompt(&chosen, &rejected)
            .ok_or_else(|| bad(origin, "chosen", RowIssue::NoSharedPrompt))?,
    };
    if ex.chosen.is_empty() {
        return Err(bad(origin, "chosen", RowIssue::Empty));
    }
    if ex.rejected.is_empty() {
        return Err(bad(origin, "rejected", RowIssue::Empty));
    }
    Ok(ex)
}

fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let mut end = 0;
    for ((i, ca), cb) in a.char_indices().zip(b.chars()) {
        if ca != cb {
            break;
        }
        end = i + ca.len_utf8();
    }
    &a[..end]
}

impl PreferenceExample {
    /// Renders the example to text as TRL's `maybe_apply_chat_template` does: the prompt with the
    /// generation prompt (or continuing a final assistant message), then `prompt + chosen` and
    /// `prompt + rejected` rendered whole, the completions being the text after the common prefix
    /// with the rendered prompt. Standard examples are returned unchanged.
    pub fn render(&self, template: &ChatTemplate) -> std::result::Result<TextExample, RowIssue> {
        match (&self.prompt, &self.chosen, &self.rejected) {
            (Content::Text(p), Content::Text(c), Content::Text(r)) => Ok(TextExample {
                prompt: p.clone(),
                chosen: c.clone(),
                rejected: r.clone(),
            }),
            (Content::Messages(p), Content::Messages(c), Content::Messages(r)) => {
                let last = p.last().map(|m| m.role.as_str()).unwrap_or("");
                let tmpl_err = |e: String| RowIssue::Template { detail: e };
                let mut prompt = match last {
                    "user" => template.render(p, true).map_err(tmpl_err)?,
                    "assistant" => template.render_continue_final(p).map_err(tmpl_err)?,
                    other => {
                        return Err(RowIssue::BadLastPromptRole {
                            role: other.to_string(),
                        });
                    }
                };
                let mut pc = p.clone();
                pc.extend(c.iter().cloned());
                let prompt_chosen = template.render(&pc, false).map_err(tmpl_err)?;
                prompt = common_prefix(&prompt, &prompt_chosen).to_string();
                let chosen = prompt_chosen[prompt.len()..].to_string();
                let mut pr = p.clone();
                pr.extend(r.iter().cloned());
                let prompt_rejected = template.render(&pr, false).map_err(tmpl_err)?;
                prompt = common_prefix(&prompt, &prompt_rejected).to_string();
                let rejected = prompt_rejected[prompt.len()..].to_string();
                Ok(TextExample {
                    prompt,
                    chosen,
                    rejected,
                })
            }
            _ => Err(RowIssue::MixedFormats),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Content {
        Content::Text(s.into())
    }

    #[test]
    fn extract_text_prompt_like_trl() {
        let ex = extract_prompt(&t("The sky is blue."), &t("The sky is green.")).unwrap();
        assert_eq!(ex.prompt, t("The sky is"));
        assert_eq!(ex.chosen, t(" blue."));
        assert_eq!(ex.rejected, t(" green."));
        // no shared prefix
        assert!(extract_prompt(&t("abc"), &t("xyz")).is_none());
    }

    #[test]
    fn extract_message_prompt() {
        let u = Message::new("user", "hi");
        let a = Message::new("assistant", "hello");
        let b = Message::new("assistant", "go away");
        let ex = extract_prompt(
            &Content::Messages(vec![u.clone(), a.clone()]),
            &Content::Messages(vec![u.clone(), b.clone()]),
        )
        .unwrap();
        assert_eq!(ex.prompt, Content::Messages(vec![u]));
        assert_eq!(ex.chosen, Content::Messages(vec![a]));
        assert_eq!(ex.rejected, Content::Messages(vec![b]));
    }
}
