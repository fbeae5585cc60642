//! WebSocket connections: the protocol of `docs/PROTOCOL.md`.
//!
//! Each connection has a reader (this task: parse, check, forward to the
//! document actor) and a writer (a task draining the connection's outbound
//! queue, which the actor fills). Bad input is answered with an error frame
//! and changes nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use shared::protocol::{ClientMessage, ErrorCode, ServerMessage};
use shared::{Author, ClientId, Revision};
use tokio::sync::{mpsc, oneshot};

use crate::document::actor::MOVED;
use crate::document::{Command, ConnId, DocumentHandle, Outbound, Route};
use crate::error::Error;
use crate::AppState;

/// How often an idle connection is pinged.
const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Frames queued for one connection before it counts as too slow.
const OUTBOUND_QUEUE: usize = 8192;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// `GET /ws`: upgrades to the editing protocol, for any document.
pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    let limit = state.config.max_message_bytes;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| connection(socket, state, None))
}

/// The cookie nginx routes a document's connections by: the node serving it.
pub const NODE_COOKIE: &str = "collab_node";

/// `GET /ws/d/{document}`: the editing protocol for one document, routed.
///
/// In cluster mode the server first finds who serves the document. If it
/// is this server, the upgrade sets the node cookie to this node, so the
/// load balancer keeps the document's connections here. If another live
/// server owns it, the upgrade sets the cookie to that node and closes at
/// once with code 4001: the client reconnects and the load balancer sends it
/// to the owner.
pub async fn upgrade_document(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    Path(document): Path<String>,
) -> Response {
    let limit = state.config.max_message_bytes;
    let ws = ws.max_message_size(limit).max_frame_size(limit);
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
            connection(socket, state, Some(pinned)).await
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
    let close = CloseFrame {
        code: MOVED,
        reason: "document served by another app server".into(),
    };
    let _ = socket.send(Message::Close(Some(close))).await;
}

struct Joined {
    document: String,
    handle: DocumentHandle,
    client: ClientId,
    author: Author,
}

async fn connection(socket: WebSocket, state: AppState, pinned: Option<String>) {
    let conn: ConnId = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let (outbound, mut queue) = mpsc::channel::<Outbound>(OUTBOUND_QUEUE);
    let writer = tokio::spawn(async move {
        // Pings keep an idle connection alive through proxies (nginx times
        // out an upstream that says nothing) and show a dead peer.
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            let out = tokio::select! {
                out = queue.recv() => match out {
                    Some(out) => out,
                    None => break,
                },
                _ = ping.tick() => {
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let message = match out {
                Outbound::Frame(text) => Message::Text(text),
                Outbound::Close(code, reason) => {
                    let close = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    break;
                }
            };
            if sink.send(message).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    state.metrics.connections.fetch_add(1, Ordering::Relaxed);

    let mut joined: Option<Joined> = None;
    while let Some(message) = stream.next().await {
        let text = match message {
            Ok(Message::Text(text)) => text,
            Ok(Message::Binary(_)) => {
                reply_error(
                    &outbound,
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
                    let _ = outbound.try_send(Outbound::Close(1009, "message too large".into()));
                }
                tracing::debug!(conn, %message, "connection read failed");
                break;
            }
        };
        let parsed: ClientMessage = match serde_json::from_str(text.as_str()) {
            Ok(parsed) => parsed,
            Err(error) => {
                reply_error(
                    &outbound,
                    ErrorCode::BadMessage,
                    &format!("not a protocol message: {error}"),
                    None,
                );
                continue;
            }
        };
        match parsed {
            ClientMessage::Join {
                document,
                client,
                revision,
                name,
            } => {
                if pinned.as_ref().is_some_and(|p| *p != document) {
                    reply_error(
                        &outbound,
                        ErrorCode::BadMessage,
                        "this socket is for another document",
                        None,
                    );
                    continue;
                }
                if let Some(previous) = joined.take() {
                    let _ = previous.handle.send(Command::Leave { conn }).await;
                }
                let author = Author::new(&display_name(name.as_deref()));
                match join(&state, conn, &document, revision, &outbound).await {
                    Ok(handle) => {
                        joined = Some(Joined {
                            document,
                            handle,
                            client,
                            author,
                        })
                    }
                    Err(Error::UnknownDocument(_)) => reply_error(
                        &outbound,
                        ErrorCode::UnknownDocument,
                        &format!("no document {document}"),
                        None,
                    ),
                    Err(error) => {
                        tracing::warn!(conn, %document, %error, "join failed");
                        reply_error(
                            &outbound,
                            ErrorCode::Internal,
                            "the document is unavailable; try again",
                            None,
                        )
                    }
                }
            }
            ClientMessage::Submit { change } => {
                let Some(session) = &joined else {
                    reply_error(
                        &outbound,
                        ErrorCode::NotJoined,
                        "join a document first",
                        Some(change.seq),
                    );
                    continue;
                };
                if change.client != session.client {
                    reply_error(
                        &outbound,
                        ErrorCode::NotJoined,
                        "the change's client is not the joined one",
                        Some(change.seq),
                    );
                    continue;
                }
                let command = Command::Submit {
                    conn,
                    change,
                    author: session.author.clone(),
                };
                if session.handle.send(command).await.is_err() {
                    // The actor stopped: make the client reconnect and resend.
                    tracing::warn!(conn, document = %session.document, "document actor gone");
                    let _ = outbound.try_send(Outbound::Close(1011, "document unavailable; reconnect".into()));
                    break;
                }
            }
        }
    }
    if let Some(session) = joined {
        let _ = session.handle.send(Command::Leave { conn }).await;
    }
    drop(outbound);
    let _ = writer.await;
    state.metrics.connections.fetch_sub(1, Ordering::Relaxed);
}

/// Joins the connection to a document, retrying once if its actor was
/// just unloading.
async fn join(
    state: &AppState,
    conn: ConnId,
    document: &str,
    revision: Option<Revision>,
    outbound: &mpsc::Sender<Outbound>,
) -> Result<DocumentHandle, Error> {
    for _ in 0..3 {
        let handle = state.documents.handle(document).await?;
        let (done, joined) = oneshot::channel();
        let command = Command::Join {
            conn,
            outbound: outbound.clone(),
            revision,
            done,
        };
        if handle.send(command).await.is_ok() && joined.await.is_ok() {
            return Ok(handle);
        }
    }
    Err(Error::Unavailable)
}

fn reply_error(outbound: &mpsc::Sender<Outbound>, code: ErrorCode, message: &str, seq: Option<shared::Seq>) {
    let frame = serde_json::to_string(&ServerMessage::error(code, message, seq)).expect("messages serialize");
    let _ = outbound.try_send(Outbound::Frame(Utf8Bytes::from(frame)));
}

/// The name shown to collaborators: trimmed, at most 40 characters.
fn display_name(name: Option<&str>) -> String {
    let name: String = name
        .unwrap_or("")
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(40)
        .collect();
    if name.is_empty() {
        "Anonymous".to_owned()
    } else {
        name
    }
}
