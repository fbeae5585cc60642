//! Server functions: the pages' calls to the server. Each runs on the
//! server (through [`crate::backend::Backend`]) and is a POST from the browser.

use leptos::prelude::*;
use shared::api::{DocumentSummary, DocumentView};

#[cfg(feature = "ssr")]
fn backend() -> Result<std::sync::Arc<dyn crate::backend::Backend>, ServerFnError> {
    use_context::<std::sync::Arc<dyn crate::backend::Backend>>().ok_or_else(|| ServerFnError::new("no backend"))
}

/// The most recently changed documents.
#[server]
pub async fn list_documents() -> Result<Vec<DocumentSummary>, ServerFnError> {
    backend()?.list().await.map_err(ServerFnError::new)
}

/// Creates a document and opens it.
#[server]
pub async fn create_document(title: String) -> Result<DocumentSummary, ServerFnError> {
    let title = (!title.trim().is_empty()).then_some(title);
    let created = backend()?
        .create(shared::api::NewDocument {
            title,
            ..Default::default()
        })
        .await
        .map_err(ServerFnError::new)?;
    leptos_axum::redirect(&format!("/d/{}", created.id));
    Ok(created)
}

/// A document with its current text; `None` when there is no such document.
#[server]
pub async fn get_document(id: String) -> Result<Option<DocumentView>, ServerFnError> {
    backend()?.view(id).await.map_err(ServerFnError::new)
}

/// Renames a document.
#[server]
pub async fn rename_document(id: String, title: String) -> Result<DocumentSummary, ServerFnError> {
    backend()?.rename(id, title).await.map_err(ServerFnError::new)
}

/// Deletes a document.
#[server]
pub async fn delete_document(id: String) -> Result<(), ServerFnError> {
    backend()?.delete(id).await.map_err(ServerFnError::new)
}
