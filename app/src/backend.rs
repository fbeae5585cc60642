//! What the server functions need from the server (only in the `ssr` build).
//!
//! The `server` crate implements [`Backend`] on its document registry and
//! puts an `Arc<dyn Backend>` in the Leptos context; the app never sees the
//! database.

use std::future::Future;
use std::pin::Pin;

use shared::api::{DocumentSummary, DocumentView, NewDocument};

/// A boxed future, as trait objects return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The documents, as the app's server functions use them. Errors are
/// messages for the user.
pub trait Backend: Send + Sync + 'static {
    fn list(&self) -> BoxFuture<'_, Result<Vec<DocumentSummary>, String>>;
    fn create(&self, new: NewDocument) -> BoxFuture<'_, Result<DocumentSummary, String>>;
    fn view(&self, id: String) -> BoxFuture<'_, Result<Option<DocumentView>, String>>;
    fn rename(&self, id: String, title: String) -> BoxFuture<'_, Result<DocumentSummary, String>>;
    fn delete(&self, id: String) -> BoxFuture<'_, Result<(), String>>;
}
