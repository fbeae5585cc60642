//! What keeps the server safe to expose: the security headers on every
//! response, CSRF protection on state-changing requests, the `Origin`
//! allowlist, the client's address, and the connection limits per user and
//! per address. `docs/SECURITY.md` explains the reasoning.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{cookie, Session, SESSION_COOKIE};
use crate::config::{origin_of, Security};
use crate::error::Error;
use crate::AppState;

/// Is a request's `Origin` allowed? No `Origin` (a client that is not a
/// browser, or a same-origin GET) is allowed: cross-site requests from a
/// browser always carry one. Allowed: the request's own host, and the
/// configured origins.
pub fn origin_allowed(headers: &HeaderMap, security: &Security) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(origin) = origin.to_str().ok().and_then(origin_of) else {
        // "null" (sandboxed frames, file: pages) and garbage.
        return false;
    };
    if security.allowed_origins.contains(&origin) {
        return true;
    }
    let host = if security.trust_proxy {
        headers.get("x-forwarded-host").or_else(|| headers.get(header::HOST))
    } else {
        headers.get(header::HOST)
    };
    let Some(host) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, origin_host)| origin_host.eq_ignore_ascii_case(host.trim()))
}

/// The client's address: the peer's, or behind a trusted proxy the one in
/// `X-Real-IP`.
pub fn client_ip(headers: &HeaderMap, peer: PeerAddr, security: &Security) -> String {
    if security.trust_proxy {
        if let Some(ip) = headers.get("x-real-ip").and_then(|v| v.to_str().ok()) {
            return ip.trim().to_owned();
        }
    }
    peer.0
        .map(|addr| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The address of the connection's other end (when the server was started
/// with connection info; tests that build a router alone have none).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| *addr),
        ))
    }
}

/// Was the request made over HTTPS (as far as the server can tell)?
pub fn is_https(headers: &HeaderMap, security: &Security) -> bool {
    security.https
        || (security.trust_proxy
            && headers
                .get("x-forwarded-proto")
                .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https")))
}

/// The signed-in user of a request, if any.
pub struct MaybeUser(pub Option<Session>);

/// The signed-in user of a request; 401 without one.
pub struct SignedIn(pub Session);

/// The session token a request carries in its cookie.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| cookie(h, SESSION_COOKIE))
        .map(str::to_owned)
}

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if let Some(session) = parts.extensions.get::<Session>() {
            return Ok(MaybeUser(Some(session.clone())));
        }
        let Some(token) = session_token(&parts.headers) else {
            return Ok(MaybeUser(None));
        };
        let session = state.accounts.session(&token).await?;
        if let Some(session) = &session {
            parts.extensions.insert(session.clone());
        }
        Ok(MaybeUser(session))
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        match MaybeUser::from_request_parts(parts, state).await? {
            MaybeUser(Some(session)) => Ok(SignedIn(session)),
            MaybeUser(None) => Err(Error::Unauthorized),
        }
    }
}

/// The Content-Security-Policy of responses that are not pages (pages get
/// one with the nonce of their scripts, from the app's shell).
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Middleware: refuses cross-site state-changing requests (CSRF), then adds
/// the security headers every response carries.
pub async fn protect(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let security = &state.config.security;
    let unsafe_method = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        let cross_site = request
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site");
        if cross_site || !origin_allowed(request.headers(), security) {
            state
                .metrics
                .refused_origins
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Error::Forbidden("cross-site request refused".into()).into_response();
        }
    }
    let https = is_https(request.headers(), security);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set(header::CONTENT_SECURITY_POLICY, API_CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    // Not "no-referrer": with it, browsers send `Origin: null` on same-origin
    // form posts, which the CSRF check must refuse.
    set(header::REFERRER_POLICY, "same-origin");
    set(HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    set(HeaderName::from_static("cross-origin-resource-policy"), "same-origin");
    set(
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    );
    if https {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000; includeSubDomains");
    }
    response
}

/// Open WebSocket connections per user and per address, on this server.
#[derive(Default)]
pub struct ConnectionLimits {
    open: Mutex<HashMap<String, u32>>,
}

/// A counted connection; uncounted when dropped.
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    keys: [String; 2],
}

impl ConnectionLimits {
    /// Counts a connection of `user` from `ip`, unless either is at its limit.
    pub fn admit(self: &Arc<Self>, user: &str, ip: &str, security: &Security) -> Option<Permit> {
        let keys = [format!("user:{user}"), format!("ip:{ip}")];
        let mut open = self.open.lock().expect("limits lock");
        let over = |key: &String, limit: u32| open.get(key).copied().unwrap_or(0) >= limit;
        if over(&keys[0], security.max_connections_per_user) || over(&keys[1], security.max_connections_per_ip) {
            return None;
        }
        for key in &keys {
            *open.entry(key.clone()).or_insert(0) += 1;
        }
        drop(open);
        Some(Permit {
            limits: self.clone(),
            keys,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().expect("limits lock");
        for key in &self.keys {
            if let Some(n) = open.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(key);
                }
            }
        }
    }
}

/// A token bucket: `rate` messages per second, bursts of `2 × rate`.
pub struct RateLimit {
    rate: f64,
    tokens: f64,
    last: std::time::Instant,
}

impl RateLimit {
    pub fn new(rate: u32) -> RateLimit {
        RateLimit {
            rate: f64::from(rate),
            tokens: f64::from(rate) * 2.0,
            last: std::time::Instant::now(),
        }
    }

    /// Takes a token; false when there is none.
    pub fn allow(&mut self) -> bool {
        let now = std::time::Instant::now();
        let burst = self.rate * 2.0;
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
