//! Server functions: the pages' calls to the server. Each runs on the
//! server (through [`crate::backend::Backend`], with the session of the
//! request's cookie) and is a POST from the browser.

use leptos::prelude::*;
use shared::api::{DocumentSummary, DocumentView, LinkView, Role, Sharing, UserView};

#[cfg(feature = "ssr")]
fn backend() -> Result<std::sync::Arc<dyn crate::backend::Backend>, ServerFnError> {
    use_context::<std::sync::Arc<dyn crate::backend::Backend>>().ok_or_else(|| ServerFnError::new("no backend"))
}

/// The session token in the request's cookie.
#[cfg(feature = "ssr")]
fn token() -> Option<String> {
    let parts = use_context::<http::request::Parts>()?;
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|header| header.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == shared::api::SESSION_COOKIE).then(|| value.to_owned())
        })
}

/// The signed-in user, if any.
#[server]
pub async fn current_user() -> Result<Option<UserView>, ServerFnError> {
    backend()?.me(token()).await.map_err(ServerFnError::new)
}

/// The caller's documents, most recently changed first.
#[server]
pub async fn list_documents() -> Result<Vec<DocumentSummary>, ServerFnError> {
    backend()?.list(token()).await.map_err(ServerFnError::new)
}

/// Creates a document and opens it.
#[server]
pub async fn create_document(title: String) -> Result<DocumentSummary, ServerFnError> {
    let title = (!title.trim().is_empty()).then_some(title);
    let created = backend()?
        .create(
            token(),
            shared::api::NewDocument {
                title,
                ..Default::default()
            },
        )
        .await
        .map_err(ServerFnError::new)?;
    leptos_axum::redirect(&format!("/d/{}", created.id));
    Ok(created)
}

/// A document with its current text; `None` when there is no such document
/// or the caller may not see it (the page answers 404 either way).
#[server]
pub async fn get_document(id: String) -> Result<Option<DocumentView>, ServerFnError> {
    let view = backend()?.view(token(), id).await.map_err(ServerFnError::new)?;
    if view.is_none() {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    Ok(view)
}

/// Renames a document (editors and owners).
#[server]
pub async fn rename_document(id: String, title: String) -> Result<DocumentSummary, ServerFnError> {
    backend()?.rename(token(), id, title).await.map_err(ServerFnError::new)
}

/// Deletes a document (owners).
#[server]
pub async fn delete_document(id: String) -> Result<(), ServerFnError> {
    backend()?.delete(token(), id).await.map_err(ServerFnError::new)
}

/// Who has access to a document (owners).
#[server]
pub async fn get_sharing(id: String) -> Result<Sharing, ServerFnError> {
    backend()?.sharing(token(), id).await.map_err(ServerFnError::new)
}

/// Shares a document with the account of `email` (owners).
#[server]
pub async fn share_with(id: String, email: String, role: Role) -> Result<Sharing, ServerFnError> {
    backend()?
        .add_member(token(), id, shared::api::AddMember { email, role })
        .await
        .map_err(ServerFnError::new)
}

/// Takes a member's access away (owners).
#[server]
pub async fn unshare(id: String, user: String) -> Result<Sharing, ServerFnError> {
    backend()?
        .remove_member(token(), id, user)
        .await
        .map_err(ServerFnError::new)
}

/// Makes a share link granting `role` (owners).
#[server]
pub async fn create_link(id: String, role: Role) -> Result<LinkView, ServerFnError> {
    backend()?
        .create_link(token(), id, role)
        .await
        .map_err(ServerFnError::new)
}

/// Revokes a share link and the access it granted (owners).
#[server]
pub async fn revoke_link(id: String, link: String) -> Result<Sharing, ServerFnError> {
    backend()?
        .revoke_link(token(), id, link)
        .await
        .map_err(ServerFnError::new)
}
