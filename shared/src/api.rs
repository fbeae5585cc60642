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
    /// The caller's role.
    pub role: Role,
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
    /// The caller's role.
    pub role: Role,
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

/// What a user may do with a document. Ordered: an owner may do all an
/// editor may, an editor all a viewer may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads the document, live.
    Viewer,
    /// Also edits it.
    Editor,
    /// Also renames, shares and deletes it.
    Owner,
}

impl Role {
    /// The role's name, as stored.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }

    /// Parses a stored role name.
    pub fn from_name(name: &str) -> Option<Role> {
        [Role::Viewer, Role::Editor, Role::Owner]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// The colours accounts are given, for names and cursors. The page styles
/// each with a class (`color-0` …), so no inline style is needed.
pub const COLORS: [&str; 10] = [
    "#d1495b", "#00798c", "#edae49", "#66a182", "#2e4057", "#8d5a97", "#c2571a", "#3c6e71", "#b5179e", "#4361ee",
];

/// The CSS class of a colour from [`COLORS`] (`color-0` for any other).
pub fn color_class(color: &str) -> String {
    format!("color-{}", COLORS.iter().position(|c| *c == color).unwrap_or(0))
}

/// A person, as others see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub name: String,
    /// A CSS colour, `#rrggbb`.
    pub color: String,
    /// Shown to the user themself and to owners sharing with them.
    pub email: String,
}

/// Creating an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    pub email: String,
    pub name: String,
    pub password: String,
}

/// Signing in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub email: String,
    pub password: String,
}

/// A member of a document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub user: UserView,
    pub role: Role,
    /// The share link that granted the role, if one did.
    pub via_link: Option<String>,
}

/// A share link (its secret is only shown when it is made).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    pub id: String,
    pub role: Role,
    pub created_at: i64,
    /// `/s/{token}`: only in the answer that created the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Who has access to a document, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sharing {
    pub members: Vec<MemberView>,
    pub links: Vec<LinkView>,
}

/// Giving someone a role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// Their account's email address.
    pub email: String,
    pub role: Role,
}

/// Making a share link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    pub role: Role,
}

/// The name of the session cookie (HttpOnly: scripts never see it).
pub const SESSION_COOKIE: &str = "collab_session";

/// The longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 40;
/// The shortest password.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A display name as stored: trimmed, 1 to 40 characters, no control characters.
pub fn clean_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(format!("a name has 1 to {MAX_NAME_CHARS} characters"));
    }
    Ok(name.to_owned())
}

/// An email address as stored: trimmed, lower case, roughly `local@domain`.
pub fn clean_email(email: &str) -> Result<String, String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err("that is not an email address".into())
    }
}
