//! The server's one error type, and how it answers over HTTP.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What went wrong in the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// The database failed, under the group commit (which writes SQLite
    /// directly).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Stored data that does not parse.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// No such document.
    #[error("no document {0}")]
    UnknownDocument(String),
    /// A request that cannot be honoured.
    #[error("{0}")]
    BadRequest(String),
    /// Not signed in (or the session ended).
    #[error("sign in first")]
    Unauthorized,
    /// Signed in, but the role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// Too many attempts; wait this long.
    #[error("too many attempts; try again in {} seconds", .0.as_secs().max(1))]
    Throttled(std::time::Duration),
    /// Something that should not fail did.
    #[error("internal: {0}")]
    Internal(String),
    /// The merge engine refused something.
    #[error(transparent)]
    Engine(#[from] shared::Error),
    /// A newer owner holds the document: this process may no longer write it.
    #[error("document {0} has a newer owner")]
    Fenced(String),
    /// Another live app server owns the document.
    #[error("document {document} is served by {node}")]
    Elsewhere { document: String, node: String },
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    /// The document's actor stopped (it is restarted on the next request).
    #[error("the document is unavailable; try again")]
    Unavailable,
    /// An I/O failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::UnknownDocument(_) => StatusCode::NOT_FOUND,
            Error::BadRequest(_) | Error::Engine(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable | Error::Fenced(_) | Error::Elsewhere { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        // Unknown and forbidden documents look the same from outside.
        let message = match &self {
            Error::UnknownDocument(_) => "no such document".to_owned(),
            other => other.to_string(),
        };
        let body = serde_json::json!({ "error": message });
        let mut response = (status, axum::Json(body)).into_response();
        if let Error::Throttled(wait) = &self {
            if let Ok(value) = axum::http::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}
