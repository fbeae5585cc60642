//! The documents over HTTP, as JSON: create, list, read, rename, delete,
//! and share.
//!
//! `POST /api/documents`, `GET /api/documents`, `GET /api/documents/{id}`,
//! `PATCH /api/documents/{id}`, `DELETE /api/documents/{id}`,
//! `GET /api/documents/{id}/changes`, and the owner's
//! `GET /api/documents/{id}/sharing`, `POST …/members`,
//! `DELETE …/members/{user}`, `POST …/links`, `DELETE …/links/{link}`.
//! Every route needs a session and checks the caller's role; a document
//! the caller has no role on answers 404, as if it did not exist. Errors
//! answer `{"error": "..."}` with a 4xx or 5xx status and change nothing.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete as delete_route, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use shared::api::{AddMember, DocumentSummary, DocumentView, LinkView, NewDocument, NewLink, Rename, Sharing};
use shared::{AcceptedChange, Revision};

use crate::error::Error;
use crate::security::SignedIn;
use crate::AppState;

/// The API's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/documents", get(list).post(create))
        .route("/api/documents/{id}", get(read).patch(rename).delete(delete))
        .route("/api/documents/{id}/changes", get(changes))
        .route("/api/documents/{id}/sharing", get(sharing))
        .route("/api/documents/{id}/members", post(add_member))
        .route("/api/documents/{id}/members/{user}", delete_route(remove_member))
        .route("/api/documents/{id}/links", post(create_link))
        .route("/api/documents/{id}/links/{link}", delete_route(revoke_link))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u64>,
}

async fn list(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<DocumentSummary>>, Error> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(state.documents.list(&me.user, limit).await?))
}

async fn create(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    body: Result<Json<NewDocument>, JsonRejection>,
) -> Result<impl IntoResponse, Error> {
    let Json(new) = body.map_err(|e| Error::BadRequest(e.body_text()))?;
    let created = state.documents.create(&me.user, new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn read(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<DocumentView>, Error> {
    Ok(Json(state.documents.view(&me.user, &id).await?))
}

async fn rename(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
    body: Result<Json<Rename>, JsonRejection>,
) -> Result<Json<DocumentSummary>, Error> {
    let Json(rename) = body.map_err(|e| Error::BadRequest(e.body_text()))?;
    Ok(Json(state.documents.rename(&me.user, &id, &rename.title).await?))
}

#[derive(Deserialize)]
struct ChangesQuery {
    after: u64,
    limit: Option<u64>,
}

/// `GET /api/documents/{id}/changes?after=N`: accepted changes after
/// revision N, in order (at most `limit`, 10,000 by default).
async fn changes(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
    Query(query): Query<ChangesQuery>,
) -> Result<Json<Vec<AcceptedChange>>, Error> {
    let limit = query.limit.unwrap_or(10_000).clamp(1, 10_000);
    Ok(Json(
        state
            .documents
            .changes(&me.user, &id, Revision(query.after), limit)
            .await?,
    ))
}

async fn delete(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    state.documents.delete(&me.user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn sharing(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
) -> Result<Json<Sharing>, Error> {
    Ok(Json(state.documents.sharing(&me.user, &id).await?))
}

async fn add_member(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
    body: Result<Json<AddMember>, JsonRejection>,
) -> Result<Json<Sharing>, Error> {
    let Json(add) = body.map_err(|e| Error::BadRequest(e.body_text()))?;
    Ok(Json(state.documents.add_member(&me.user, &id, add).await?))
}

async fn remove_member(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path((id, user)): Path<(String, String)>,
) -> Result<Json<Sharing>, Error> {
    Ok(Json(state.documents.remove_member(&me.user, &id, &user).await?))
}

async fn create_link(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path(id): Path<String>,
    body: Result<Json<NewLink>, JsonRejection>,
) -> Result<impl IntoResponse, Error> {
    let Json(new) = body.map_err(|e| Error::BadRequest(e.body_text()))?;
    let link: LinkView = state.documents.create_link(&me.user, &id, new.role).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

async fn revoke_link(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    Path((id, link)): Path<(String, String)>,
) -> Result<Json<Sharing>, Error> {
    Ok(Json(state.documents.revoke_link(&me.user, &id, &link).await?))
}
