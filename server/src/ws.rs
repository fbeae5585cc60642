//! WebSocket connections: the protocol of `docs/PROTOCOL.md`.
//!
//! The handshake needs a session cookie and an allowed `Origin`, and counts
//! against the connections allowed per user and per address. Each
//! connection then has a reader (this task: parse, check the rate and the
//! caller's role, forward to the document actor) and an outlet (its
//! document's actor writes frames straight into the socket; a writer task
//! finishes what the socket could not take at once). Access
//! changes (a role changed or taken away, a session ended) reach the
//! reader at once and close or downgrade the connection. Bad input is
//! answered with an error frame and changes nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use shared::api::Role;
use shared::protocol::{close, ClientMessage, ErrorCode, Peer, ServerMessage};
use shared::{Author, ClientId, Revision};
use tokio::sync::{broadcast, oneshot};

use crate::access::AccessEvent;
use crate::auth::Session;
use crate::document::actor::{close_frame, frame, MOVED};
use crate::document::{Command, ConnId, DocumentHandle, Outlet, Route};
use crate::error::Error;
use crate::outlet::{Ended, Pings};
use crate::security::{client_ip, origin_allowed, MaybeUser, PeerAddr, Permit, RateLimit};
use crate::AppState;

/// How often an idle connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(2);

/// How often a connection checks its session and role against the
/// database, in case an access event was missed (Redis away).
const RECHECK_EVERY: Duration = Duration::from_secs(15);

/// When connection `conn` first rechecks: connections opened one after
/// another (consecutive ids) are spread over `RECHECK_EVERY`.
fn recheck_phase(conn: ConnId) -> Duration {
    RECHECK_EVERY * (1 + (conn % 1000) as u32) / 1000
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Who opened a connection, once the handshake's checks passed.
struct Caller {
    session: Session,
    /// Counts the connection against its user's and address's limits;
    /// `None` when over a limit (the socket says so and closes).
    permit: Option<Permit>,
}

/// The handshake's checks: an allowed `Origin`, a session, and the limits.
/// A refusal is the response to send (boxed: a `Response` is large, and the
/// caller is the common case).
fn admit(
    state: &AppState,
    headers: &HeaderMap,
    peer: PeerAddr,
    session: Option<Session>,
) -> Result<Caller, Box<Response>> {
    let security = &state.config.security;
    if !origin_allowed(headers, security) {
        state.metrics.refused_origins.fetch_add(1, Ordering::Relaxed);
        return Err(Box::new(
            Error::Forbidden("this origin may not open the editor's WebSocket".into()).into_response(),
        ));
    }
    let session = session.ok_or_else(|| Box::new(Error::Unauthorized.into_response()))?;
    let ip = client_ip(headers, peer, security);
    let permit = state.limits.admit(&session.user.id, &ip, security);
    if permit.is_none() {
        state.metrics.refused_connections.fetch_add(1, Ordering::Relaxed);
    }
    Ok(Caller { session, permit })
}

/// `GET /ws`: upgrades to the editing protocol, for any document.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    MaybeUser(session): MaybeUser,
    peer: PeerAddr,
    headers: HeaderMap,
) -> Response {
    let caller = match admit(&state, &headers, peer, session) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let limit = state.config.max_message_bytes;
    sized(ws, limit).on_upgrade(move |socket| connection(socket, state, caller, None))
}

/// A connection's limits and buffers. Editing frames are small: a read
/// buffer of a few KiB (not tungstenite's 128 KiB) keeps ten thousand idle
/// connections in tens of MiB; larger frames are read in several steps.
/// Frames written are gathered (up to 64 KiB) until the writer flushes.
fn sized(ws: WebSocketUpgrade, limit: usize) -> WebSocketUpgrade {
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(4096)
        .write_buffer_size(64 * 1024)
}

/// The cookie nginx routes a document's connections by: the node serving it.
pub const NODE_COOKIE: &str = "collab_node";

/// `GET /ws/d/{document}`: the editing protocol for one document, routed.
///
/// The caller needs a role on the document (otherwise 404, as for a
/// document that does not exist). In cluster mode the server first finds
/// who serves the document. If it is this server, the upgrade sets the node
/// cookie to this node, so the load balancer keeps the document's
/// connections here. If another live server owns it, the upgrade sets the
/// cookie to that node and closes at once with code 4001: the client
/// reconnects and the load balancer sends it to the owner.
pub async fn upgrade_document(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    MaybeUser(session): MaybeUser,
    peer: PeerAddr,
    headers: HeaderMap,
    Path(document): Path<String>,
) -> Response {
    let caller = match admit(&state, &headers, peer, session) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    if let Err(error) = state.documents.role(&caller.session.user, &document).await {
        return error.into_response();
    }
    let limit = state.config.max_message_bytes;
    let ws = sized(ws, limit);
    let (node, moved) = match state.documents.route(&document).await {
        Ok(Route::Here(_)) => (state.documents.cluster().map(|c| c.node().to_owned()), false),
        Ok(Route::Elsewhere { node, .. }) => {
            state.metrics.redirects.fetch_add(1, Ordering::Relaxed);
            (Some(node), true)
        }
        Err(error) => return error.into_response(),
    };
    let pinned = document.clone();
    let mut response = ws.on_upgrade(move |socket| async move {
        if moved {
            moved_elsewhere(socket).await
        } else {
            connection(socket, state, caller, Some(pinned)).await
        }
    });
    if let Some(node) = node {
        let cookie = format!("{NODE_COOKIE}={node}; Path=/ws/d/{document}; HttpOnly; SameSite=Lax");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

/// Tells a client the document is served elsewhere (its cookie now says where).
async fn moved_elsewhere(mut socket: WebSocket) {
    let _ = socket
        .send(close_frame(MOVED, "document served by another app server"))
        .await;
}

struct Joined {
    document: String,
    handle: DocumentHandle,
    client: ClientId,
    role: Role,
}

/// Why a connection ends on the server's initiative.
enum Ending {
    /// Close with this code and reason.
    Close(u16, &'static str),
}

/// The close code for a connection that fell too far behind (its queue of
/// frames filled up): "try again later", which clients answer by
/// reconnecting with back-off and catching up from their revision.
const TOO_FAR_BEHIND: u16 = 1013;

/// How long a closing socket waits for its peer to take the last frames.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Starts the connection's outlet on the socket's sink and its writer
/// task: the writer writes what the outlet could not write at once, pings
/// the connection when idle (through proxies, nginx times out an upstream
/// that says nothing; a dead peer shows), and says 1013 when the outlet's
/// queue fills.
fn open_outlet(
    sink: futures_util::stream::SplitSink<WebSocket, Message>,
    queue: usize,
) -> (Outlet, tokio::task::JoinHandle<Ended>) {
    let (outlet, writer) = Outlet::new(Box::pin(sink.sink_map_err(|_| ())), queue);
    let pings = Pings {
        every: PING_EVERY,
        ping: || Message::Ping(Default::default()),
    };
    let evicted = close_frame(TOO_FAR_BEHIND, "too far behind; reconnect to catch up");
    let writer = tokio::spawn(writer.run(Some(pings), evicted, CLOSE_GRACE));
    (outlet, writer)
}

async fn connection(socket: WebSocket, state: AppState, caller: Caller, pinned: Option<String>) {
    let conn: ConnId = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let (sink, mut stream) = socket.split();
    // What every document this connection joins holds of it.
    let (outlet, mut writer) = open_outlet(sink, state.config.documents.outbound_queue);
    let mut writer_done = false;
    let Caller { session, permit } = caller;
    if permit.is_none() {
        reply_error(
            &outlet,
            ErrorCode::TooManyConnections,
            "too many open connections for this account or address; close some tabs or try again later",
            None,
        );
        outlet.close_with(close_frame(close::TOO_MANY_CONNECTIONS, "too many connections"));
        let _ = writer.await;
        return;
    }
    state.metrics.connections.fetch_add(1, Ordering::Relaxed);
    let author = Author::new(&session.user.name);
    let mut events = state.documents.access().listen(&session.user.id, &session.token_hash);
    let mut rate = RateLimit::new(state.config.security.max_messages_per_sec);
    let expires = tokio::time::Instant::now()
        + Duration::from_millis((session.expires_at - crate::store::now_ms()).max(0) as u64);
    let expiry = tokio::time::sleep_until(expires);
    tokio::pin!(expiry);
    // In cluster mode an access event can be missed (Redis away), so the
    // connection rechecks in the database, at a phase of its own: ten
    // thousand connections opened together must not recheck together.
    // Embedded, events are in-process: only a lagging receiver misses one,
    // and it rechecks then (below).
    let rechecking = state.documents.cluster().is_some();
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + recheck_phase(conn), RECHECK_EVERY);

    let mut joined: Option<Joined> = None;
    let mut ending: Option<Ending> = None;
    loop {
        let message = tokio::select! {
            message = stream.next() => match message {
                Some(message) => message,
                None => break,
            },
            // The writer gave up (the connection fell too far behind, or
            // the socket failed): nothing more can reach the client.
            _ = &mut writer => {
                writer_done = true;
                break;
            }
            event = events.recv() => {
                ending = match event {
                    Ok(event) => heard(conn, &session, &mut joined, &outlet, event).await,
                    // Missed events: ask the database instead.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        recheck_access(&state, conn, &session, &mut joined, &outlet).await
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        events = state.documents.access().listen(&session.user.id, &session.token_hash);
                        None
                    }
                };
                if ending.is_some() {
                    break;
                }
                continue;
            }
            _ = &mut expiry => {
                ending = Some(Ending::Close(close::SIGNED_OUT, "the session expired; sign in again"));
                break;
            }
            _ = recheck.tick(), if rechecking => {
                ending = recheck_access(&state, conn, &session, &mut joined, &outlet).await;
                if ending.is_some() {
                    break;
                }
                continue;
            }
        };
        let text = match message {
            Ok(Message::Text(text)) => text,
            Ok(Message::Binary(_)) => {
                reply_error(
                    &outlet,
                    ErrorCode::BadMessage,
                    "binary frames are not part of the protocol",
                    None,
                );
                continue;
            }
            Ok(Message::Close(_)) => break,
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Err(error) => {
                let message = error.to_string();
                if message.contains("too long") || message.contains("Space limit") || message.contains("too big") {
                    outlet.close_with(close_frame(1009, "message too large"));
                }
                tracing::debug!(conn, %message, "connection read failed");
                break;
            }
        };
        let parsed: ClientMessage = match serde_json::from_str(text.as_str()) {
            Ok(parsed) => parsed,
            Err(error) => {
                reply_error(
                    &outlet,
                    ErrorCode::BadMessage,
                    &format!("not a protocol message: {error}"),
                    None,
                );
                continue;
            }
        };
        if !rate.allow() {
            state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            let seq = match &parsed {
                ClientMessage::Submit { change } => Some(change.seq),
                ClientMessage::Join { .. } => None,
            };
            reply_error(
                &outlet,
                ErrorCode::RateLimited,
                "too many messages; this one was not applied: send it again in a moment",
                seq,
            );
            continue;
        }
        match parsed {
            ClientMessage::Join {
                document,
                client,
                revision,
                name: _,
            } => {
                if pinned.as_ref().is_some_and(|p| *p != document) {
                    reply_error(
                        &outlet,
                        ErrorCode::BadMessage,
                        "this socket is for another document",
                        None,
                    );
                    continue;
                }
                if let Some(previous) = joined.take() {
                    let _ = previous.handle.send(Command::Leave { conn }).await;
                }
                let role = match state.documents.role(&session.user, &document).await {
                    Ok(role) => role,
                    Err(Error::UnknownDocument(_)) => {
                        reply_error(
                            &outlet,
                            ErrorCode::UnknownDocument,
                            &format!("no document {document}"),
                            None,
                        );
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(conn, %document, %error, "role lookup failed");
                        reply_error(
                            &outlet,
                            ErrorCode::Internal,
                            "the document is unavailable; try again",
                            None,
                        );
                        continue;
                    }
                };
                let peer = Peer {
                    user: session.user.id.clone(),
                    name: session.user.name.clone(),
                    color: session.user.color.clone(),
                    role,
                };
                match join(&state, conn, &document, peer, revision, &outlet).await {
                    Ok(handle) => {
                        joined = Some(Joined {
                            document,
                            handle,
                            client,
                            role,
                        })
                    }
                    Err(Error::UnknownDocument(_)) => reply_error(
                        &outlet,
                        ErrorCode::UnknownDocument,
                        &format!("no document {document}"),
                        None,
                    ),
                    Err(error) => {
                        tracing::warn!(conn, %document, %error, "join failed");
                        reply_error(
                            &outlet,
                            ErrorCode::Internal,
                            "the document is unavailable; try again",
                            None,
                        )
                    }
                }
            }
            ClientMessage::Submit { change } => {
                let Some(session) = &joined else {
                    reply_error(&outlet, ErrorCode::NotJoined, "join a document first", Some(change.seq));
                    continue;
                };
                if change.client != session.client {
                    reply_error(
                        &outlet,
                        ErrorCode::NotJoined,
                        "the change's client is not the joined one",
                        Some(change.seq),
                    );
                    continue;
                }
                if session.role < Role::Editor {
                    reply_error(
                        &outlet,
                        ErrorCode::Forbidden,
                        "you may view this document but not change it",
                        Some(change.seq),
                    );
                    continue;
                }
                let command = Command::Submit {
                    conn,
                    change,
                    author: author.clone(),
                };
                if session.handle.send(command).await.is_err() {
                    // The actor stopped: make the client reconnect and resend.
                    tracing::warn!(conn, document = %session.document, "document actor gone");
                    outlet.close_with(close_frame(1011, "document unavailable; reconnect"));
                    break;
                }
            }
        }
    }
    if let Some(Ending::Close(code, reason)) = ending {
        outlet.close_with(close_frame(code, reason));
    }
    if let Some(session) = joined {
        let _ = session.handle.send(Command::Leave { conn }).await;
    }
    outlet.finish();
    if !writer_done {
        let _ = writer.await;
    }
    drop(permit);
    state.metrics.connections.fetch_sub(1, Ordering::Relaxed);
}

/// Acts on an access event: the connection's session ended, or its role on
/// the joined document changed.
async fn heard(
    conn: ConnId,
    session: &Session,
    joined: &mut Option<Joined>,
    outlet: &Outlet,
    event: AccessEvent,
) -> Option<Ending> {
    match event {
        AccessEvent::Session { token_hash } if token_hash == session.token_hash => {
            Some(Ending::Close(close::SIGNED_OUT, "signed out"))
        }
        AccessEvent::Member { document, user, role }
            if user == session.user.id && joined.as_ref().is_some_and(|j| j.document == document) =>
        {
            set_role(conn, joined, outlet, role).await
        }
        _ => None,
    }
}

/// Asks the database whether the session is live and what the role on the
/// joined document is now.
async fn recheck_access(
    state: &AppState,
    conn: ConnId,
    session: &Session,
    joined: &mut Option<Joined>,
    outlet: &Outlet,
) -> Option<Ending> {
    match state.accounts.session_by_hash(&session.token_hash).await {
        Ok(None) => return Some(Ending::Close(close::SIGNED_OUT, "the session ended; sign in again")),
        Ok(Some(_)) => {}
        // The database is away: keep what we know.
        Err(_) => return None,
    }
    let document = joined.as_ref().map(|j| j.document.clone())?;
    match state.documents.role(&session.user, &document).await {
        Ok(role) => set_role(conn, joined, outlet, Some(role)).await,
        Err(Error::UnknownDocument(_)) => set_role(conn, joined, outlet, None).await,
        Err(_) => None,
    }
}

/// The joined document's role is now `role`: tell the client (and the
/// presence list), or close if it is gone.
async fn set_role(conn: ConnId, joined: &mut Option<Joined>, outlet: &Outlet, role: Option<Role>) -> Option<Ending> {
    let current = joined.as_mut()?;
    let Some(role) = role else {
        return Some(Ending::Close(
            close::ACCESS_REVOKED,
            "you no longer have access to this document",
        ));
    };
    if current.role != role {
        current.role = role;
        outlet.send(Message::Text(frame(&ServerMessage::Role { role })));
        let _ = current.handle.send(Command::SetRole { conn, role }).await;
    }
    None
}

/// Joins the connection to a document, retrying once if its actor was
/// just unloading.
async fn join(
    state: &AppState,
    conn: ConnId,
    document: &str,
    peer: Peer,
    revision: Option<Revision>,
    outlet: &Outlet,
) -> Result<DocumentHandle, Error> {
    for _ in 0..3 {
        let handle = state.documents.handle(document).await?;
        let (done, joined) = oneshot::channel();
        let command = Command::Join {
            conn,
            outlet: outlet.clone(),
            peer: peer.clone(),
            revision,
            done,
        };
        if handle.send(command).await.is_ok() && joined.await.is_ok() {
            return Ok(handle);
        }
    }
    Err(Error::Unavailable)
}

fn reply_error(outlet: &Outlet, code: ErrorCode, message: &str, seq: Option<shared::Seq>) {
    outlet.send(Message::Text(frame(&ServerMessage::error(code, message, seq))));
}
