//! The HTTP API's data: what the home page and the editor page read.

use serde::{Deserialize, Serialize};

use crate::change::Revision;
use crate::protocol::DocumentId;
use crate::section::SectionPolicy;

/// A document in a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentSummary {
    pub id: DocumentId,
    pub title: String,
    pub revision: Revision,
    pub policy: SectionPolicy,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch of the last accepted change or rename.
    pub updated_at: i64,
}

/// A document with its text, as of `revision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentView {
    pub id: DocumentId,
    pub title: String,
    pub revision: Revision,
    pub policy: SectionPolicy,
    pub text: String,
}

/// Creating a document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDocument {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub policy: Option<SectionPolicy>,
    /// Initial text.
    #[serde(default)]
    pub text: Option<String>,
}

/// Renaming a document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    pub title: String,
}

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// A title as stored: trimmed, not empty, not too long.
pub fn clean_title(title: &str) -> Result<String, String> {
    let title = title.trim();
    if title.is_empty() {
        return Err("the title is empty".into());
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(format!("the title is longer than {MAX_TITLE_CHARS} characters"));
    }
    if title.chars().any(char::is_control) {
        return Err("the title contains control characters".into());
    }
    Ok(title.to_owned())
}
