//! The sans-IO core of the collaborative editor.
//!
//! This crate is compiled twice: natively into the server, and to
//! WebAssembly into the browser app. Both sides run the very same merge, so
//! the browser predicts a conflict before the server's verdict arrives and
//! the verdict always agrees. It does no I/O, spawns nothing and reads no
//! clock: every function is a pure step on plain data.
//!
//! - [`delta`]: [`Delta`], the retain / insert / delete edit of a text, with
//!   apply, compose, transform (rebase) and its compact wire form.
//! - [`diff`]: the delta between an old and a new text.
//! - [`section`]: [`SectionPolicy`], when two concurrent changes conflict.
//! - [`change`]: [`Change`], [`Revision`], [`Verdict`] and the other nouns
//!   of the protocol.
//! - [`document`]: [`DocumentState`], the server's side of a document.
//! - [`client`]: [`ClientState`], the browser's sync state machine and the
//!   rejected edits tray.
//! - [`protocol`]: the WebSocket messages between browser and server.
//! - [`api`]: the HTTP API's documents.
//! - `tagged`: decoding the protocol's tagged objects without buffering.
//! - [`text`]: character, byte and line positions.
//! - [`error`]: [`Error`], the crate's one error type.

pub mod api;
pub mod change;
pub mod client;
pub mod delta;
pub mod diff;
pub mod document;
pub mod error;
pub mod protocol;
pub mod section;
mod tagged;
pub mod text;

pub use change::{AcceptedChange, Author, Change, ClientId, Conflict, Revision, Seq, Verdict};
pub use client::{ClientState, TrayEntry, Update};
pub use delta::{Bias, Delta, Hunk, Op};
pub use document::{Decision, DocumentState, Limits};
pub use error::Error;
pub use section::{SectionPolicy, Span};
