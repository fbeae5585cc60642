//! The app's view of the server: the `app::Backend` that its server
//! functions call, implemented on [`Documents`].

use std::sync::Arc;

use app::backend::{Backend, BoxFuture};
use shared::api::{DocumentSummary, DocumentView, NewDocument};

use crate::document::Documents;
use crate::error::Error;

/// [`Documents`] as the Leptos app sees it.
pub struct AppBackend(pub Documents);

fn message(error: Error) -> String {
    if error.status().is_server_error() {
        tracing::error!(%error, "server function failed");
    }
    error.to_string()
}

impl Backend for AppBackend {
    fn list(&self) -> BoxFuture<'_, Result<Vec<DocumentSummary>, String>> {
        Box::pin(async move { self.0.list(100).await.map_err(message) })
    }

    fn create(&self, new: NewDocument) -> BoxFuture<'_, Result<DocumentSummary, String>> {
        Box::pin(async move { self.0.create(new).await.map_err(message) })
    }

    fn view(&self, id: String) -> BoxFuture<'_, Result<Option<DocumentView>, String>> {
        Box::pin(async move {
            match self.0.view(&id).await {
                Ok(view) => Ok(Some(view)),
                Err(Error::UnknownDocument(_)) => Ok(None),
                Err(error) => Err(message(error)),
            }
        })
    }

    fn rename(&self, id: String, title: String) -> BoxFuture<'_, Result<DocumentSummary, String>> {
        Box::pin(async move { self.0.rename(&id, &title).await.map_err(message) })
    }

    fn delete(&self, id: String) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.delete(&id).await.map_err(message) })
    }
}

/// The backend as the app's context holds it.
pub fn shared(documents: Documents) -> Arc<dyn Backend> {
    Arc::new(AppBackend(documents))
}
