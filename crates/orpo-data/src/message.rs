//! Chat messages and the two shapes of a preference field: plain text (TRL's standard format)
//! or a list of messages (the conversational format).

use serde::{Deserialize, Serialize};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, …
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// Builds a message.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A field of a preference example: plain text (standard format) or messages (conversational).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Standard format.
    Text(String),
    /// Conversational format.
    Messages(Vec<Message>),
}

impl Content {
    /// Whether this is a message list.
    pub fn is_conversational(&self) -> bool {
        matches!(self, Content::Messages(_))
    }

    /// Whether the text, or every message's text, is blank.
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Content::Text(t) => t.trim().is_empty(),
            Content::Messages(m) => m.is_empty() || m.iter().all(|m| m.content.trim().is_empty()),
        }
    }
}
