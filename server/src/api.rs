//! The documents over HTTP, as JSON: create, list, read, rename, delete.
//!
//! `POST /api/documents`, `GET /api/documents`, `GET /api/documents/{id}`,
//! `PATCH /api/documents/{id}`, `DELETE /api/documents/{id}`. Errors answer
//! `{"error": "..."}` with a 4xx or 5xx status and change nothing.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use shared::api::{DocumentSummary, DocumentView, NewDocument, Rename};
use shared::{AcceptedChange, Revision};

use crate::error::Error;
use crate::AppState;

/// The API's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/documents", get(list).post(create))
        .route("/api/documents/{id}", get(read).patch(rename).delete(delete))
        .route("/api/documents/{id}/changes", get(changes))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u64>,
}

async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<DocumentSummary>>, Error> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(state.documents.list(limit).await?))
}

async fn create(
    State(state): State<AppState>,
    body: Result<Json<NewDocument>, JsonRejection>,
) -> Result<impl IntoResponse, Error> {
    let Json(new) = body.map_err(|e| Error::BadRequest(e.body_text()))?;
    let created = state.documents.create(new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn read(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<DocumentView>, Error> {
    Ok(Json(state.documents.view(&id).await?))
}

async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<Rename>, JsonRejection>,
) -> Result<Json<DocumentSummary>, Error> {
    let Json(rename) = body.map_err(|e| Error::BadRequest(e.body_text()))?;
    Ok(Json(state.documents.rename(&id, &rename.title).await?))
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
    Path(id): Path<String>,
    Query(query): Query<ChangesQuery>,
) -> Result<Json<Vec<AcceptedChange>>, Error> {
    let limit = query.limit.unwrap_or(10_000).clamp(1, 10_000);
    Ok(Json(state.documents.changes(&id, Revision(query.after), limit).await?))
}

async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, Error> {
    state.documents.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
