//! The app's view of the server: the `app::Backend` that its server
//! functions call, implemented on [`Accounts`] and [`Documents`] with the
//! same checks as the HTTP API.

use std::sync::Arc;

use app::backend::{Backend, BoxFuture, Token};
use shared::api::{AddMember, DocumentSummary, DocumentView, LinkView, NewDocument, Role, Sharing, UserView};

use crate::auth::Accounts;
use crate::document::Documents;
use crate::error::Error;

/// [`Documents`] as the Leptos app sees it.
pub struct AppBackend {
    documents: Documents,
    accounts: Accounts,
}

fn message(error: Error) -> String {
    if error.status().is_server_error() {
        tracing::error!(%error, "server function failed");
    }
    match error {
        Error::UnknownDocument(_) => "no such document".into(),
        other => other.to_string(),
    }
}

impl AppBackend {
    /// The signed-in user, or "sign in first".
    async fn user(&self, token: Token) -> Result<UserView, Error> {
        let token = token.ok_or(Error::Unauthorized)?;
        let session = self.accounts.session(&token).await?.ok_or(Error::Unauthorized)?;
        Ok(session.user)
    }
}

impl Backend for AppBackend {
    fn me(&self, token: Token) -> BoxFuture<'_, Result<Option<UserView>, String>> {
        Box::pin(async move {
            match self.user(token).await {
                Ok(user) => Ok(Some(user)),
                Err(Error::Unauthorized) => Ok(None),
                Err(error) => Err(message(error)),
            }
        })
    }

    fn list(&self, token: Token) -> BoxFuture<'_, Result<Vec<DocumentSummary>, String>> {
        Box::pin(async move {
            let user = self.user(token).await.map_err(message)?;
            self.documents.list(&user, 100).await.map_err(message)
        })
    }

    fn create(&self, token: Token, new: NewDocument) -> BoxFuture<'_, Result<DocumentSummary, String>> {
        Box::pin(async move {
            let user = self.user(token).await.map_err(message)?;
            self.documents.create(&user, new).await.map_err(message)
        })
    }

    fn view(&self, token: Token, id: String) -> BoxFuture<'_, Result<Option<DocumentView>, String>> {
        Box::pin(async move {
            let user = self.user(token).await.map_err(message)?;
            match self.documents.view(&user, &id).await {
                Ok(view) => Ok(Some(view)),
                Err(Error::UnknownDocument(_)) => Ok(None),
                Err(error) => Err(message(error)),
            }
        })
    }

    fn rename(&self, token: Token, id: String, title: String) -> BoxFuture<'_, Result<DocumentSummary, String>> {
        Box::pin(async move {
            let user = self.user(token).await.map_err(message)?;
            self.documents.rename(&user, &id, &title).await.map_err(message)
        })
    }

    fn delete(&self, token: Token, id: String) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let user = self.user(token).await.map_err(message)?;
            self.documents.delete(&user, &id).await.map_err(message)
        })
    }

    fn sharing(&self, token: Token, id: String) -> BoxFuture<'_, Result<Sharing, String>> {
        Box::pin(async move {
            let user = self.user(token).await.map_err(message)?;
            self.documents.sharing(&user, &id).await.map_err(message)
        })
    }

    fn add_member(&self, token: Token, id: String, add: AddMember) -> BoxFuture<'_, Result<Sharing, String>> {
        Box::pin(async move {
            let user = self.user(token).await.map_err(message)?;
            self.documents.add_member(&user, &id, add).await.map_err(message)
        })
    }

    fn remove_member(&self, token: Token, id: String, member: String) -> BoxFuture<'_, Result<Sharing, String>> {
        Box::pin(async move {
            let user = self.user(token).await.map_err(message)?;
            self.documents.remove_member(&user, &id, &member).await.map_err(message)
        })
    }

    fn create_link(&self, token: Token, id: String, role: Role) -> BoxFuture<'_, Result<LinkView, String>> {
        Box::pin(async move {
            let user = self.user(token).await.map_err(message)?;
            self.documents.create_link(&user, &id, role).await.map_err(message)
        })
    }

    fn revoke_link(&self, token: Token, id: String, link: String) -> BoxFuture<'_, Result<Sharing, String>> {
        Box::pin(async move {
            let user = self.user(token).await.map_err(message)?;
            self.documents.revoke_link(&user, &id, &link).await.map_err(message)
        })
    }
}

/// The backend as the app's context holds it.
pub fn shared(documents: Documents, accounts: Accounts) -> Arc<dyn Backend> {
    Arc::new(AppBackend { documents, accounts })
}
