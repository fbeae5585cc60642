//! Bad input is answered, never obeyed: each case gets a clear error frame
//! or HTTP status, changes nothing, and the server carries on.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use shared::protocol::{ClientMessage, ErrorCode, ServerMessage};
use shared::{Change, ClientId, Delta, Revision, Seq, Verdict};
use support::{
    any_port, connect, create_owned, http_as, next_skipping_presence as next, send, sign_up, start, Socket, TempDir,
};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

async fn expect_error(socket: &mut Socket, code: ErrorCode) {
    match next(socket, WAIT).await {
        Some(ServerMessage::Error { code: got, message, .. }) => {
            assert_eq!(got, code, "{message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected error {code:?}, got {other:?}"),
    }
}

async fn raw(socket: &mut Socket, text: &str) {
    socket.send(Message::text(text.to_owned())).await.unwrap();
}

fn change(client: u64, seq: u64, base: u64, delta: Delta) -> ClientMessage {
    ClientMessage::Submit {
        change: Change {
            client: ClientId::new(client).unwrap(),
            seq: Seq(seq),
            base: Revision(base),
            delta,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_error_frames_and_change_nothing() {
    let dir = TempDir::new("bad-ws");
    let server = start(&dir.sqlite_url(), any_port(), |c| {
        c.documents.limits.max_chars = 100;
        c.max_message_bytes = 64 * 1024;
    })
    .await;
    let owner = sign_up(&server.addr.to_string(), "owner").await;
    let doc = create_owned(&server, &owner, "hello\n").await;
    let mut socket = connect(server.addr, &owner).await;

    // Not JSON, an unknown type, missing and extra fields, a binary frame.
    raw(&mut socket, "this is not json").await;
    expect_error(&mut socket, ErrorCode::BadMessage).await;
    raw(&mut socket, r#"{"type":"shout","text":"hi"}"#).await;
    expect_error(&mut socket, ErrorCode::BadMessage).await;
    raw(&mut socket, r#"{"type":"join"}"#).await;
    expect_error(&mut socket, ErrorCode::BadMessage).await;
    raw(
        &mut socket,
        &format!(r#"{{"type":"join","document":"{}","client":1,"extra":true}}"#, doc.id),
    )
    .await;
    expect_error(&mut socket, ErrorCode::BadMessage).await;
    socket.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    expect_error(&mut socket, ErrorCode::BadMessage).await;
    // A client id JavaScript cannot hold.
    raw(
        &mut socket,
        &format!(r#"{{"type":"join","document":"{}","client":9007199254740993}}"#, doc.id),
    )
    .await;
    expect_error(&mut socket, ErrorCode::BadMessage).await;

    // A change before joining; a join of a document that does not exist.
    send(&mut socket, &change(1, 1, 0, Delta::splice(6, 0, 0, "x").unwrap())).await;
    expect_error(&mut socket, ErrorCode::NotJoined).await;
    let join = |document: &str| ClientMessage::Join {
        document: document.to_owned(),
        client: ClientId::new(1).unwrap(),
        revision: None,
        name: None,
    };
    send(&mut socket, &join("no-such-document")).await;
    expect_error(&mut socket, ErrorCode::UnknownDocument).await;

    send(&mut socket, &join(&doc.id)).await;
    assert!(matches!(
        next(&mut socket, WAIT).await,
        Some(ServerMessage::Joined { .. })
    ));

    // Deltas that do not fit: wrong base length, past the end, zero-length ops.
    send(&mut socket, &change(1, 1, 0, Delta::identity(5))).await;
    expect_error(&mut socket, ErrorCode::BadDelta).await;
    send(&mut socket, &change(1, 2, 0, Delta::splice(60, 50, 0, "x").unwrap())).await;
    expect_error(&mut socket, ErrorCode::BadDelta).await;
    raw(
        &mut socket,
        r#"{"type":"submit","change":{"client":1,"seq":3,"base":0,"delta":[6,0]}}"#,
    )
    .await;
    expect_error(&mut socket, ErrorCode::BadMessage).await;
    // Another client's id; a base revision in the future.
    send(&mut socket, &change(2, 1, 0, Delta::splice(6, 0, 0, "x").unwrap())).await;
    expect_error(&mut socket, ErrorCode::NotJoined).await;
    send(&mut socket, &change(1, 4, 7, Delta::splice(6, 0, 0, "x").unwrap())).await;
    expect_error(&mut socket, ErrorCode::UnknownRevision).await;
    // Too large a document.
    send(
        &mut socket,
        &change(1, 5, 0, Delta::splice(6, 6, 0, &"y".repeat(200)).unwrap()),
    )
    .await;
    expect_error(&mut socket, ErrorCode::DocumentTooLarge).await;

    // A good change is accepted; then an older sequence number is refused.
    send(&mut socket, &change(1, 10, 0, Delta::splice(6, 0, 0, "> ").unwrap())).await;
    match next(&mut socket, WAIT).await {
        Some(ServerMessage::Verdict { seq, verdict }) => {
            assert_eq!((seq, verdict), (Seq(10), Verdict::Accepted { revision: Revision(1) }))
        }
        other => panic!("expected the verdict, got {other:?}"),
    }
    send(&mut socket, &change(1, 9, 1, Delta::splice(8, 0, 0, "z").unwrap())).await;
    expect_error(&mut socket, ErrorCode::StaleSequence).await;
    // The same change again: the same verdict, applied once.
    send(&mut socket, &change(1, 10, 0, Delta::splice(6, 0, 0, "> ").unwrap())).await;
    match next(&mut socket, WAIT).await {
        Some(ServerMessage::Verdict { seq, verdict }) => {
            assert_eq!((seq, verdict), (Seq(10), Verdict::Accepted { revision: Revision(1) }))
        }
        other => panic!("expected the repeated verdict, got {other:?}"),
    }
    let view = server.documents().view(&owner.user, &doc.id).await.unwrap();
    assert_eq!(
        (view.text.as_str(), view.revision),
        ("> hello\n", Revision(1)),
        "only the good change applied"
    );

    // An oversized message closes the socket with 1009; the server carries on.
    socket.send(Message::text("x".repeat(100 * 1024))).await.unwrap();
    let mut code = None;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(WAIT, socket.next()).await {
        if let Message::Close(Some(frame)) = message {
            code = Some(u16::from(frame.code));
            break;
        }
    }
    assert_eq!(code, Some(1009), "closed as too large");
    let (status, _) = support::http(&server.addr.to_string(), "GET", "/healthz", None).await;
    assert_eq!(status, 200);
    let view = server.documents().view(&owner.user, &doc.id).await.unwrap();
    assert_eq!(view.text, "> hello\n");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_http_requests_get_clear_statuses() {
    let dir = TempDir::new("bad-http");
    let server = start(&dir.sqlite_url(), any_port(), |c| c.documents.limits.max_chars = 1000).await;
    let addr = server.addr.to_string();
    let owner = sign_up(&addr, "owner").await;
    let http = |addr: &str, method: &str, path: &str, body: Option<&str>| {
        let (addr, method, path, body) = (
            addr.to_owned(),
            method.to_owned(),
            path.to_owned(),
            body.map(str::to_owned),
        );
        let owner = owner.clone();
        async move { http_as(&owner, &addr, &method, &path, body.as_deref()).await }
    };

    let (status, body) = http(&addr, "GET", "/api/documents/nope", None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no such document"), "{body}");
    let (status, body) = http(&addr, "POST", "/api/documents", Some("{not json")).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = http(&addr, "POST", "/api/documents", Some(r#"{"titel":"typo"}"#)).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = http(
        &addr,
        "POST",
        "/api/documents",
        Some(&format!(r#"{{"text":"{}"}}"#, "a".repeat(2000))),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = http(&addr, "POST", "/api/documents", Some(r#"{"title":"   "}"#)).await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = http(
        &addr,
        "POST",
        "/api/documents",
        Some(r#"{"title":"Plan","text":"a\nb\n"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = http(&addr, "PATCH", &format!("/api/documents/{id}"), Some(r#"{"title":""}"#)).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = http(
        &addr,
        "PATCH",
        &format!("/api/documents/{id}"),
        Some(r#"{"title":"Plan B"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&addr, "GET", &format!("/api/documents/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("Plan B") && body.contains(r#""text":"a\nb\n""#), "{body}");
    let (status, _) = http(&addr, "GET", &format!("/api/documents/{id}/changes?after=0"), None).await;
    assert_eq!(status, 200);
    let (status, _) = http(&addr, "DELETE", "/api/documents/nope", None).await;
    assert_eq!(status, 404);
    let (status, _) = http(&addr, "DELETE", &format!("/api/documents/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = http(&addr, "GET", &format!("/api/documents/{id}"), None).await;
    assert_eq!(status, 404);
    server.shutdown().await;
}
