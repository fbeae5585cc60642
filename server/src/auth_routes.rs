//! Accounts over HTTP: sign up, sign in, sign out, who am I, and share
//! links.
//!
//! `POST /api/auth/sign-up`, `POST /api/auth/sign-in` and
//! `POST /api/auth/sign-out` take JSON (answering JSON) or an HTML form
//! (answering a redirect: to the form's `next` path on success, back to the
//! form with an error code otherwise), so the sign-in page works before the
//! WebAssembly has loaded. `GET /api/auth/me` names the signed-in user.
//! `GET /s/{token}` opens a share link; `POST /api/links/{token}` does the
//! same for programs.

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use shared::api::{SignIn, SignUp, UserView};

use crate::access::AccessEvent;
use crate::auth::SESSION_COOKIE;
use crate::error::Error;
use crate::security::{client_ip, is_https, session_token, MaybeUser, PeerAddr, SignedIn};
use crate::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/sign-up", post(sign_up))
        .route("/api/auth/sign-in", post(sign_in))
        .route("/api/auth/sign-out", post(sign_out))
        .route("/api/auth/me", get(me))
        .route("/api/links/{token}", post(redeem_api))
        .route("/s/{token}", get(redeem_page))
}

/// A request body, JSON or form, and which it was.
struct Body<T> {
    value: T,
    form: bool,
}

async fn body<T: DeserializeOwned + Send + 'static>(request: Request) -> Result<Body<T>, Error> {
    let form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let value = if form {
        Form::<T>::from_request(request, &())
            .await
            .map_err(|e| Error::BadRequest(e.body_text()))?
            .0
    } else {
        Json::<T>::from_request(request, &())
            .await
            .map_err(|e| Error::BadRequest(e.body_text()))?
            .0
    };
    Ok(Body { value, form })
}

/// The sign-up form's fields (JSON takes [`SignUp`]).
#[derive(Deserialize)]
struct SignUpForm {
    email: String,
    name: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// The sign-in form's fields (JSON takes [`SignIn`]).
#[derive(Deserialize)]
struct SignInForm {
    email: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// Where a form may send the browser afterwards: a local path of plain
/// characters, never another site.
fn next_path(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && path.len() < 200
                && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b)) =>
        {
            path
        }
        _ => "/",
    }
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

fn with_cookie(mut response: Response, cookie: String) -> Response {
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

fn session_cookie(state: &AppState, headers: &HeaderMap, token: &str) -> String {
    let secure = if is_https(headers, &state.config.security) {
        "; Secure"
    } else {
        ""
    };
    let age = state.config.security.session_ttl.as_secs();
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={age}{secure}")
}

fn cleared_cookie(state: &AppState, headers: &HeaderMap) -> String {
    let secure = if is_https(headers, &state.config.security) {
        "; Secure"
    } else {
        ""
    };
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
}

/// The error code a form is sent back with (the page words it).
fn form_error(error: &Error) -> &'static str {
    match error {
        Error::Unauthorized => "invalid",
        Error::Throttled(_) => "throttled",
        Error::BadRequest(message) if message.contains("exists") => "exists",
        Error::BadRequest(_) => "input",
        _ => "unavailable",
    }
}

fn back_to(page: &str, error: &Error, next: &str) -> Response {
    redirect(&format!("{page}?error={}&next={next}", form_error(error)))
}

fn signed_in(state: &AppState, headers: &HeaderMap, form: Option<&str>, user: UserView, token: &str) -> Response {
    let response = match form {
        Some(next) => redirect(next),
        None => (StatusCode::OK, Json(user)).into_response(),
    };
    with_cookie(response, session_cookie(state, headers, token))
}

async fn sign_up(State(state): State<AppState>, request: Request) -> Result<Response, Error> {
    let headers = request.headers().clone();
    let Body { value, form } = body::<serde_json::Value>(request).await?;
    let (form, next) = if form {
        let fields: SignUpForm = serde_json::from_value(value).map_err(|e| Error::BadRequest(e.to_string()))?;
        let next = next_path(fields.next.as_deref()).to_owned();
        (
            SignUp {
                email: fields.email,
                name: fields.name,
                password: fields.password,
            },
            Some(next),
        )
    } else {
        (
            serde_json::from_value(value).map_err(|e| Error::BadRequest(e.to_string()))?,
            None,
        )
    };
    match state.accounts.sign_up(form).await {
        Ok((user, token)) => Ok(signed_in(&state, &headers, next.as_deref(), user, &token)),
        Err(error) => match next {
            Some(next) if !error.status().is_server_error() => Ok(back_to("/sign-up", &error, &next)),
            _ => Err(error),
        },
    }
}

async fn sign_in(State(state): State<AppState>, peer: PeerAddr, request: Request) -> Result<Response, Error> {
    let headers = request.headers().clone();
    let client = client_ip(&headers, peer, &state.config.security);
    let Body { value, form } = body::<serde_json::Value>(request).await?;
    let (form, next) = if form {
        let fields: SignInForm = serde_json::from_value(value).map_err(|e| Error::BadRequest(e.to_string()))?;
        let next = next_path(fields.next.as_deref()).to_owned();
        (
            SignIn {
                email: fields.email,
                password: fields.password,
            },
            Some(next),
        )
    } else {
        (
            serde_json::from_value(value).map_err(|e| Error::BadRequest(e.to_string()))?,
            None,
        )
    };
    match state.accounts.sign_in(form, &client).await {
        Ok((user, token)) => Ok(signed_in(&state, &headers, next.as_deref(), user, &token)),
        Err(error) => {
            if matches!(error, Error::Unauthorized | Error::Throttled(_)) {
                state
                    .metrics
                    .failed_sign_ins
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            match next {
                Some(next) if !error.status().is_server_error() => Ok(back_to("/sign-in", &error, &next)),
                _ => Err(error),
            }
        }
    }
}

/// Ends the session (and closes its WebSockets, on every app server).
async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    if let Some(token) = session_token(&headers) {
        let token_hash = state.accounts.sign_out(&token).await?;
        state
            .documents
            .access()
            .publish(AccessEvent::Session { token_hash })
            .await;
    }
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let response = if form {
        redirect("/")
    } else {
        StatusCode::NO_CONTENT.into_response()
    };
    Ok(with_cookie(response, cleared_cookie(&state, &headers)))
}

async fn me(SignedIn(session): SignedIn) -> Json<UserView> {
    Json(session.user)
}

/// `POST /api/links/{token}`: takes the link's role; answers the document id.
async fn redeem_api(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(token): Path<String>,
) -> Result<Json<serde_json::Value>, Error> {
    let document = state.documents.redeem(&session.user, &token).await?;
    Ok(Json(serde_json::json!({ "document": document })))
}

/// `GET /s/{token}`: signed in, takes the link's role and opens the
/// document; otherwise signs in first and comes back.
async fn redeem_page(
    State(state): State<AppState>,
    MaybeUser(session): MaybeUser,
    Path(token): Path<String>,
) -> Response {
    let Some(session) = session else {
        let token: String = token.chars().filter(char::is_ascii_alphanumeric).take(128).collect();
        return redirect(&format!("/sign-in?next=/s/{token}"));
    };
    match state.documents.redeem(&session.user, &token).await {
        Ok(document) => redirect(&format!("/d/{document}")),
        Err(Error::UnknownDocument(_)) => (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "This share link is not valid: it was revoked, or mistyped.",
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}
