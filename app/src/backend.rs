//! What the server functions need from the server (only in the `ssr` build).
//!
//! The `server` crate implements [`Backend`] on its accounts and document
//! registry and puts an `Arc<dyn Backend>` in the Leptos context; the app
//! never sees the database. Every call carries the caller's session token
//! (from the request's cookie), and the backend checks it and the caller's
//! role, as the HTTP API does.

use std::future::Future;
use std::pin::Pin;

use shared::api::{AddMember, DocumentSummary, DocumentView, LinkView, NewDocument, Role, Sharing, UserView};

/// A boxed future, as trait objects return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The session token of the request being served, if it has one.
pub type Token = Option<String>;

/// Accounts and documents, as the app's server functions use them. Errors
/// are messages for the user.
pub trait Backend: Send + Sync + 'static {
    /// The signed-in user, if the token names a live session.
    fn me(&self, token: Token) -> BoxFuture<'_, Result<Option<UserView>, String>>;
    fn list(&self, token: Token) -> BoxFuture<'_, Result<Vec<DocumentSummary>, String>>;
    fn create(&self, token: Token, new: NewDocument) -> BoxFuture<'_, Result<DocumentSummary, String>>;
    /// `None` when there is no such document or the caller has no role on it.
    fn view(&self, token: Token, id: String) -> BoxFuture<'_, Result<Option<DocumentView>, String>>;
    fn rename(&self, token: Token, id: String, title: String) -> BoxFuture<'_, Result<DocumentSummary, String>>;
    fn delete(&self, token: Token, id: String) -> BoxFuture<'_, Result<(), String>>;
    fn sharing(&self, token: Token, id: String) -> BoxFuture<'_, Result<Sharing, String>>;
    fn add_member(&self, token: Token, id: String, add: AddMember) -> BoxFuture<'_, Result<Sharing, String>>;
    fn remove_member(&self, token: Token, id: String, user: String) -> BoxFuture<'_, Result<Sharing, String>>;
    fn create_link(&self, token: Token, id: String, role: Role) -> BoxFuture<'_, Result<LinkView, String>>;
    fn revoke_link(&self, token: Token, id: String, link: String) -> BoxFuture<'_, Result<Sharing, String>>;
}
