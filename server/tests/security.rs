//! Security: who may do what (an access-control matrix over HTTP and the
//! WebSocket for owner, editor, viewer, share-link holders, a revoked user,
//! a stranger and the anonymous), access taken away while connected,
//! sign-out and session expiry closing sockets, the Origin allowlist and
//! CSRF checks, the limits, sign-in throttling, cookies and headers.

mod support;

use std::time::Duration;

use shared::api::{AddMember, NewDocument, Role};
use shared::protocol::{close, ClientMessage, ErrorCode, ServerMessage};
use shared::{Change, ClientId, Delta, Revision, Seq, Verdict};
use support::{
    any_port, close_code, connect_to, create_owned, http_as, next_skipping_presence, request, send, sign_up, start,
    Account, Socket, TempDir, PASSWORD,
};

const WAIT: Duration = Duration::from_secs(5);

/// Who is asking, in the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Owner,
    Editor,
    Viewer,
    EditorByLink,
    ViewerByLink,
    Revoked,
    Stranger,
    Anonymous,
}

const EVERYONE: [Who; 8] = [
    Who::Owner,
    Who::Editor,
    Who::Viewer,
    Who::EditorByLink,
    Who::ViewerByLink,
    Who::Revoked,
    Who::Stranger,
    Who::Anonymous,
];

impl Who {
    /// The role the caller holds on the document.
    fn role(self) -> Option<Role> {
        match self {
            Who::Owner => Some(Role::Owner),
            Who::Editor | Who::EditorByLink => Some(Role::Editor),
            Who::Viewer | Who::ViewerByLink => Some(Role::Viewer),
            Who::Revoked | Who::Stranger | Who::Anonymous => None,
        }
    }

    /// The status a route needing `needed` answers this caller with.
    fn expect(self, needed: Role, ok: u16) -> u16 {
        match (self, self.role()) {
            (Who::Anonymous, _) => 401,
            (_, None) => 404,
            (_, Some(role)) if role >= needed => ok,
            _ => 403,
        }
    }
}

struct World {
    addr: String,
    doc: String,
    accounts: Vec<(Who, Option<Account>)>,
}

impl World {
    fn account(&self, who: Who) -> Option<&Account> {
        self.accounts
            .iter()
            .find(|(w, _)| *w == who)
            .and_then(|(_, a)| a.as_ref())
    }

    async fn call(&self, who: Who, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let cookie = self.account(who).map(|a| a.cookie.as_str());
        let response = request(&self.addr, method, path, body, cookie, &[]).await;
        (response.status, response.body)
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Sets up a document and a caller of every kind.
async fn world(addr: &str) -> World {
    let owner = sign_up(addr, "owner").await;
    let (status, body) = http_as(
        &owner,
        addr,
        "POST",
        "/api/documents",
        Some(r#"{"title":"Plans","text":"one\ntwo\nthree\n"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let doc = json(&body)["id"].as_str().unwrap().to_owned();
    let share = |email: String, role: &str| serde_json::json!({ "email": email, "role": role }).to_string();
    let mut accounts = vec![(Who::Owner, Some(owner.clone()))];
    for (who, name, role) in [
        (Who::Editor, "editor", "editor"),
        (Who::Viewer, "viewer", "viewer"),
        (Who::Revoked, "revoked", "editor"),
    ] {
        let account = sign_up(addr, name).await;
        let path = format!("/api/documents/{doc}/members");
        let (status, body) = http_as(
            &owner,
            addr,
            "POST",
            &path,
            Some(&share(account.user.email.clone(), role)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        accounts.push((who, Some(account)));
    }
    // The revoked user had the editor role and lost it.
    let revoked = accounts[3].1.clone().unwrap();
    let path = format!("/api/documents/{doc}/members/{}", revoked.user.id);
    assert_eq!(http_as(&owner, addr, "DELETE", &path, None).await.0, 200);
    for (who, name, role) in [
        (Who::EditorByLink, "linked-editor", "editor"),
        (Who::ViewerByLink, "linked-viewer", "viewer"),
    ] {
        let path = format!("/api/documents/{doc}/links");
        let (status, body) = http_as(&owner, addr, "POST", &path, Some(&format!(r#"{{"role":"{role}"}}"#))).await;
        assert_eq!(status, 201, "{body}");
        let token = json(&body)["path"]
            .as_str()
            .unwrap()
            .trim_start_matches("/s/")
            .to_owned();
        let account = sign_up(addr, name).await;
        let (status, body) = http_as(&account, addr, "POST", &format!("/api/links/{token}"), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(json(&body)["document"], doc.as_str());
        accounts.push((who, Some(account)));
    }
    accounts.push((Who::Stranger, Some(sign_up(addr, "stranger").await)));
    accounts.push((Who::Anonymous, None));
    World {
        addr: addr.to_owned(),
        doc,
        accounts,
    }
}

fn join(document: &str, client: u64) -> ClientMessage {
    ClientMessage::Join {
        document: document.to_owned(),
        client: ClientId::new(client).unwrap(),
        revision: None,
        name: None,
    }
}

fn submit(client: u64, seq: u64, base: u64, delta: Delta) -> ClientMessage {
    ClientMessage::Submit {
        change: Change {
            client: ClientId::new(client).unwrap(),
            seq: Seq(seq),
            base: Revision(base),
            delta,
        },
    }
}

/// Joins `doc` on a fresh socket as `account`; returns the socket and the
/// revision joined at.
async fn joined(addr: &str, account: &Account, doc: &str, client: u64) -> (Socket, u64) {
    let mut socket = connect_to(addr, &format!("/ws/d/{doc}"), Some(&account.cookie), None)
        .await
        .unwrap();
    send(&mut socket, &join(doc, client)).await;
    match next_skipping_presence(&mut socket, WAIT).await {
        Some(ServerMessage::Joined { revision, .. }) => (socket, revision.0),
        other => panic!("expected joined, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_control_matrix() {
    let dir = TempDir::new("matrix");
    let server = start(&dir.sqlite_url(), any_port(), |_| {}).await;
    let addr = server.addr.to_string();
    let w = world(&addr).await;
    let doc = w.doc.clone();
    let extra = sign_up(&addr, "extra").await;
    let mut rows = Vec::new();

    for (index, who) in EVERYONE.into_iter().enumerate() {
        // Each caller's connection is a client of its own.
        let client = 10 + index as u64;
        let mut row = Vec::new();
        let mut check = |what: &str, got: u16, want: u16, body: &str| {
            assert_eq!(got, want, "{who:?} {what}: {body}");
            row.push(format!("{what} {got}"));
        };
        // Listing and creating need only a session.
        let (status, body) = w.call(who, "GET", "/api/documents", None).await;
        check("list", status, if who == Who::Anonymous { 401 } else { 200 }, &body);
        if status == 200 {
            let listed = json(&body).as_array().unwrap().iter().any(|d| d["id"] == doc.as_str());
            assert_eq!(listed, who.role().is_some(), "{who:?} sees the document in the list");
        }
        let (status, body) = w.call(who, "POST", "/api/documents", Some(r#"{"title":"Mine"}"#)).await;
        check("create", status, if who == Who::Anonymous { 401 } else { 201 }, &body);

        let (status, body) = w.call(who, "GET", &format!("/api/documents/{doc}"), None).await;
        check("read", status, who.expect(Role::Viewer, 200), &body);
        if status == 200 {
            assert_eq!(json(&body)["role"], who.role().unwrap().name());
        }
        let (status, body) = w
            .call(who, "GET", &format!("/api/documents/{doc}/changes?after=0"), None)
            .await;
        check("changes", status, who.expect(Role::Viewer, 200), &body);
        let (status, body) = w
            .call(
                who,
                "PATCH",
                &format!("/api/documents/{doc}"),
                Some(r#"{"title":"Plans"}"#),
            )
            .await;
        check("rename", status, who.expect(Role::Editor, 200), &body);
        let (status, body) = w.call(who, "GET", &format!("/api/documents/{doc}/sharing"), None).await;
        check("sharing", status, who.expect(Role::Owner, 200), &body);
        let add = serde_json::json!({ "email": extra.user.email, "role": "viewer" }).to_string();
        let (status, body) = w
            .call(who, "POST", &format!("/api/documents/{doc}/members"), Some(&add))
            .await;
        check("share", status, who.expect(Role::Owner, 200), &body);
        let (status, body) = w
            .call(
                who,
                "DELETE",
                &format!("/api/documents/{doc}/members/{}", extra.user.id),
                None,
            )
            .await;
        check("unshare", status, who.expect(Role::Owner, 200), &body);
        let (status, body) = w
            .call(
                who,
                "POST",
                &format!("/api/documents/{doc}/links"),
                Some(r#"{"role":"viewer"}"#),
            )
            .await;
        check("link", status, who.expect(Role::Owner, 201), &body);
        // Revoke the owner's new link (others try to revoke a real one too).
        let link = if status == 201 {
            json(&body)["id"].as_str().unwrap().to_owned()
        } else {
            let owner = w.account(Who::Owner).unwrap();
            let (_, body) = http_as(owner, &addr, "GET", &format!("/api/documents/{doc}/sharing"), None).await;
            json(&body)["links"][0]["id"].as_str().unwrap().to_owned()
        };
        if who != Who::Owner {
            let (status, body) = w
                .call(who, "DELETE", &format!("/api/documents/{doc}/links/{link}"), None)
                .await;
            check("revoke", status, who.expect(Role::Owner, 200), &body);
        } else {
            let (status, body) = w
                .call(who, "DELETE", &format!("/api/documents/{doc}/links/{link}"), None)
                .await;
            check("revoke", status, 200, &body);
        }
        if who != Who::Owner {
            let (status, body) = w.call(who, "DELETE", &format!("/api/documents/{doc}"), None).await;
            check("delete", status, who.expect(Role::Owner, 204), &body);
        }

        // The WebSocket: the handshake, joining, submitting.
        let cookie = w.account(who).map(|a| a.cookie.clone());
        let routed = connect_to(&addr, &format!("/ws/d/{doc}"), cookie.as_deref(), None).await;
        let want = who.expect(Role::Viewer, 101);
        check("ws/d", routed.as_ref().map(|_| 101).unwrap_or_else(|s| *s), want, "");
        let general = connect_to(&addr, "/ws", cookie.as_deref(), None).await;
        match (who, general) {
            (Who::Anonymous, result) => check("ws", result.err().unwrap_or(101), 401, ""),
            (_, Ok(mut socket)) => {
                send(&mut socket, &join(&doc, client)).await;
                let answer = next_skipping_presence(&mut socket, WAIT).await;
                match (who.role(), answer) {
                    (Some(role), Some(ServerMessage::Joined { revision, .. })) => {
                        row.push("join ok".into());
                        let len = shared::text::char_count(&server_text(&w, &doc).await);
                        let delta = Delta::splice(len, len, 0, "x").unwrap();
                        send(&mut socket, &submit(client, 1, revision.0, delta)).await;
                        match next_skipping_presence(&mut socket, WAIT).await {
                            Some(ServerMessage::Verdict {
                                verdict: Verdict::Accepted { .. },
                                ..
                            }) => {
                                assert!(role >= Role::Editor, "{who:?}'s change was accepted");
                                row.push("submit accepted".into());
                            }
                            Some(ServerMessage::Error {
                                code: ErrorCode::Forbidden,
                                seq,
                                ..
                            }) => {
                                assert_eq!(role, Role::Viewer, "{who:?}'s change was refused");
                                assert_eq!(seq, Some(Seq(1)));
                                row.push("submit forbidden".into());
                            }
                            other => panic!("{who:?}: unexpected answer to a change: {other:?}"),
                        }
                    }
                    (
                        None,
                        Some(ServerMessage::Error {
                            code: ErrorCode::UnknownDocument,
                            ..
                        }),
                    ) => {
                        row.push("join unknown".into());
                        // And a change without a join changes nothing.
                        send(
                            &mut socket,
                            &submit(client, 1, 0, Delta::splice(14, 0, 0, "x").unwrap()),
                        )
                        .await;
                        assert!(matches!(
                            next_skipping_presence(&mut socket, WAIT).await,
                            Some(ServerMessage::Error {
                                code: ErrorCode::NotJoined,
                                ..
                            })
                        ));
                    }
                    (_, other) => panic!("{who:?}: unexpected answer to a join: {other:?}"),
                }
            }
            (_, Err(status)) => panic!("{who:?}: /ws refused with {status}"),
        }
        rows.push(format!("{who:?}: {}", row.join(", ")));
    }
    // Only the editors' and owner's changes made it: owner, editor, editor by link.
    let text = server_text(&w, &doc).await;
    assert_eq!(
        text, "one\ntwo\nthree\nxxx",
        "only changes by editors and the owner applied"
    );
    // Last, the owner deletes it; then it is gone for everyone.
    let (status, _) = w
        .call(Who::Owner, "DELETE", &format!("/api/documents/{doc}"), None)
        .await;
    assert_eq!(status, 204);
    for who in EVERYONE {
        let (status, _) = w.call(who, "GET", &format!("/api/documents/{doc}"), None).await;
        assert_eq!(status, if who == Who::Anonymous { 401 } else { 404 });
    }
    println!("access-control matrix:\n  {}", rows.join("\n  "));
    server.shutdown().await;
}

async fn server_text(w: &World, doc: &str) -> String {
    let (status, body) = w.call(Who::Owner, "GET", &format!("/api/documents/{doc}"), None).await;
    assert_eq!(status, 200, "{body}");
    json(&body)["text"].as_str().unwrap().to_owned()
}

/// Unknown and forbidden documents answer alike: ids cannot be probed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_forbidden_look_the_same() {
    let dir = TempDir::new("probe");
    let server = start(&dir.sqlite_url(), any_port(), |_| {}).await;
    let addr = server.addr.to_string();
    let owner = sign_up(&addr, "owner").await;
    let stranger = sign_up(&addr, "stranger").await;
    let doc = server
        .documents()
        .create(&owner.user, NewDocument::default())
        .await
        .unwrap();
    for path in [
        format!("/api/documents/{}", doc.id),
        "/api/documents/nosuchdocument".to_owned(),
    ] {
        let (status, body) = http_as(&stranger, &addr, "GET", &path, None).await;
        assert_eq!((status, body.as_str()), (404, r#"{"error":"no such document"}"#));
    }
    // The page too.
    for id in [doc.id.as_str(), "nosuchdocument"] {
        let page = request(&addr, "GET", &format!("/d/{id}"), None, Some(&stranger.cookie), &[]).await;
        assert_eq!(page.status, 404, "/d/{id}");
        assert!(page.body.contains("No such document"));
    }
    server.shutdown().await;
}

/// Access taken away, a role lowered, a share link revoked, a sign-out:
/// the open sockets hear it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_access_and_signing_out_close_sockets() {
    let dir = TempDir::new("revoke");
    let server = start(&dir.sqlite_url(), any_port(), |_| {}).await;
    let addr = server.addr.to_string();
    let owner = sign_up(&addr, "owner").await;
    let editor = sign_up(&addr, "editor").await;
    let doc = create_owned(&server, &owner, "a\nb\n").await;
    let documents = server.documents();
    let add = |role| AddMember {
        email: editor.user.email.clone(),
        role,
    };
    documents
        .add_member(&owner.user, &doc.id, add(Role::Editor))
        .await
        .unwrap();

    // Lowered to viewer: told so, and the next change is refused.
    let (mut socket, revision) = joined(&addr, &editor, &doc.id, 1).await;
    documents
        .add_member(&owner.user, &doc.id, add(Role::Viewer))
        .await
        .unwrap();
    assert_eq!(
        next_skipping_presence(&mut socket, WAIT).await,
        Some(ServerMessage::Role { role: Role::Viewer })
    );
    send(
        &mut socket,
        &submit(1, 1, revision, Delta::splice(4, 0, 0, "z").unwrap()),
    )
    .await;
    assert!(matches!(
        next_skipping_presence(&mut socket, WAIT).await,
        Some(ServerMessage::Error {
            code: ErrorCode::Forbidden,
            ..
        })
    ));
    // Removed: the socket closes with 4403 at once.
    let started = std::time::Instant::now();
    documents
        .remove_member(&owner.user, &doc.id, &editor.user.id)
        .await
        .unwrap();
    assert_eq!(close_code(&mut socket, WAIT).await, Some(close::ACCESS_REVOKED));
    let closed_in = started.elapsed();
    assert!(closed_in < Duration::from_secs(1), "closed in {closed_in:?}");

    // A share link's holder loses access when the link is revoked.
    let link = documents.create_link(&owner.user, &doc.id, Role::Editor).await.unwrap();
    let token = link.path.unwrap().trim_start_matches("/s/").to_owned();
    let holder = sign_up(&addr, "holder").await;
    let page = request(&addr, "GET", &format!("/s/{token}"), None, Some(&holder.cookie), &[]).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.header("location"), Some(format!("/d/{}", doc.id).as_str()));
    let (mut socket, _) = joined(&addr, &holder, &doc.id, 2).await;
    documents.revoke_link(&owner.user, &doc.id, &link.id).await.unwrap();
    assert_eq!(close_code(&mut socket, WAIT).await, Some(close::ACCESS_REVOKED));
    let (status, _) = http_as(&holder, &addr, "GET", &format!("/api/documents/{}", doc.id), None).await;
    assert_eq!(status, 404);
    let page = request(&addr, "GET", &format!("/s/{token}"), None, Some(&holder.cookie), &[]).await;
    assert_eq!(page.status, 404, "a revoked link opens nothing");

    // Signing out closes that session's sockets (not the owner's others).
    let second = support::sign_in(&addr, &owner.user.email).await;
    let (mut first_socket, _) = joined(&addr, &owner, &doc.id, 3).await;
    let (mut second_socket, _) = joined(&addr, &second, &doc.id, 4).await;
    let out = request(&addr, "POST", "/api/auth/sign-out", None, Some(&owner.cookie), &[]).await;
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(close_code(&mut first_socket, WAIT).await, Some(close::SIGNED_OUT));
    assert_eq!(close_code(&mut second_socket, Duration::from_millis(500)).await, None);
    let (status, _) = http_as(&owner, &addr, "GET", "/api/documents", None).await;
    assert_eq!(status, 401, "the old cookie opens nothing");
    assert_eq!(
        connect_to(&addr, "/ws", Some(&owner.cookie), None).await.err(),
        Some(401)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_closes_its_sockets() {
    let dir = TempDir::new("expiry");
    let server = start(&dir.sqlite_url(), any_port(), |c| {
        c.security.session_ttl = Duration::from_secs(2)
    })
    .await;
    let addr = server.addr.to_string();
    let owner = sign_up(&addr, "owner").await;
    let doc = server
        .documents()
        .create(&owner.user, NewDocument::default())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (mut socket, _) = joined(&addr, &owner, &doc.id, 1).await;
    assert_eq!(close_code(&mut socket, WAIT).await, Some(close::SIGNED_OUT));
    let lasted = started.elapsed();
    assert!(
        lasted < Duration::from_millis(2600),
        "closed when the session expired, after {lasted:?}"
    );
    let (status, _) = http_as(&owner, &addr, "GET", "/api/documents", None).await;
    assert_eq!(status, 401);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_and_cross_site_requests_are_refused() {
    let dir = TempDir::new("origin");
    let server = start(&dir.sqlite_url(), any_port(), |c| {
        c.security.allowed_origins = vec!["https://app.example.com".into()]
    })
    .await;
    let addr = server.addr.to_string();
    let owner = sign_up(&addr, "owner").await;
    let doc = server
        .documents()
        .create(&owner.user, NewDocument::default())
        .await
        .unwrap();
    let path = format!("/ws/d/{}", doc.id);
    let own = format!("http://{addr}");
    for (origin, want) in [
        (Some("https://evil.example"), Err(403)),
        (Some("null"), Err(403)),
        (Some(&format!("http://{addr}.evil.example")[..]), Err(403)),
        (Some(own.as_str()), Ok(())),
        (Some("https://app.example.com"), Ok(())),
        (None, Ok(())),
    ] {
        let result = connect_to(&addr, &path, Some(&owner.cookie), origin).await.map(|_| ());
        assert_eq!(result, want, "WebSocket from {origin:?}");
    }
    // State-changing requests from another site are refused, and change nothing.
    let body = Some(r#"{"title":"Forged"}"#);
    let forged = request(
        &addr,
        "POST",
        "/api/documents",
        body,
        Some(&owner.cookie),
        &[("Origin", "https://evil.example")],
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let forged = request(
        &addr,
        "POST",
        "/api/documents",
        body,
        Some(&owner.cookie),
        &[("Sec-Fetch-Site", "cross-site")],
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let (_, listed) = http_as(&owner, &addr, "GET", "/api/documents", None).await;
    assert!(!listed.contains("Forged"));
    let same = request(
        &addr,
        "POST",
        "/api/documents",
        body,
        Some(&owner.cookie),
        &[("Origin", &own)],
    )
    .await;
    assert_eq!(same.status, 201, "{}", same.body);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_and_connection_limits() {
    let dir = TempDir::new("limits");
    let server = start(&dir.sqlite_url(), any_port(), |c| {
        c.security.max_messages_per_sec = 5;
        c.security.max_connections_per_user = 2;
        c.security.max_connections_per_ip = 4;
    })
    .await;
    let addr = server.addr.to_string();
    let owner = sign_up(&addr, "owner").await;
    let doc = server
        .documents()
        .create(&owner.user, NewDocument::default())
        .await
        .unwrap();

    // Messages per second: a burst of 10 passes, the rest are refused with
    // their sequence numbers and not applied; later ones pass again.
    let (mut socket, _) = joined(&addr, &owner, &doc.id, 1).await;
    let mut text = String::new();
    for seq in 1..=30u64 {
        // Each change based on the last: only the first ones can be accepted
        // in order, so send them one by one and read the answer.
        let delta = Delta::splice(text.chars().count(), text.chars().count(), 0, "k").unwrap();
        send(&mut socket, &submit(1, seq, text.chars().count() as u64, delta)).await;
        match next_skipping_presence(&mut socket, WAIT).await {
            Some(ServerMessage::Verdict {
                verdict: Verdict::Accepted { .. },
                ..
            }) => text.push('k'),
            Some(ServerMessage::Error {
                code: ErrorCode::RateLimited,
                seq: Some(refused),
                ..
            }) => {
                assert_eq!(refused, Seq(seq));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let accepted = text.len();
    assert!(
        (8..=12).contains(&accepted),
        "a burst of about 10 passes, got {accepted}"
    );
    let view = server.documents().view(&owner.user, &doc.id).await.unwrap();
    assert_eq!(view.text, text, "the refused change was not applied");
    // After a pause the same change goes through.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let n = text.len() as u64;
    send(
        &mut socket,
        &submit(1, 100, n, Delta::splice(n as usize, n as usize, 0, "k").unwrap()),
    )
    .await;
    assert!(matches!(
        next_skipping_presence(&mut socket, WAIT).await,
        Some(ServerMessage::Verdict {
            verdict: Verdict::Accepted { .. },
            ..
        })
    ));
    drop(socket);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Connections per user: the third gets an error frame and closes.
    let mut open = Vec::new();
    for _ in 0..2 {
        open.push(connect_to(&addr, "/ws", Some(&owner.cookie), None).await.unwrap());
    }
    let mut third = connect_to(&addr, "/ws", Some(&owner.cookie), None).await.unwrap();
    assert!(matches!(
        support::next(&mut third, WAIT).await,
        Some(ServerMessage::Error {
            code: ErrorCode::TooManyConnections,
            ..
        })
    ));
    assert_eq!(close_code(&mut third, WAIT).await, Some(close::TOO_MANY_CONNECTIONS));
    // Closing one makes room again.
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = connect_to(&addr, "/ws", Some(&owner.cookie), None).await.unwrap();
    send(&mut again, &join(&doc.id, 9)).await;
    assert!(matches!(
        next_skipping_presence(&mut again, WAIT).await,
        Some(ServerMessage::Joined { .. })
    ));
    // Connections per address: two more users, four sockets in all from 127.0.0.1.
    let other = sign_up(&addr, "other").await;
    open.push(connect_to(&addr, "/ws", Some(&other.cookie), None).await.unwrap());
    open.push(connect_to(&addr, "/ws", Some(&other.cookie), None).await.unwrap());
    let third_user = sign_up(&addr, "third").await;
    let mut over = connect_to(&addr, "/ws", Some(&third_user.cookie), None).await.unwrap();
    assert_eq!(close_code(&mut over, WAIT).await, Some(close::TOO_MANY_CONNECTIONS));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_cookies_throttling_and_headers() {
    let dir = TempDir::new("accounts");
    let server = start(&dir.sqlite_url(), any_port(), |c| c.security.trust_proxy = true).await;
    let addr = server.addr.to_string();

    // Sign-up: a session cookie that scripts cannot read; bad input refused.
    let body = format!(r#"{{"email":"Ana@Example.test","name":"Ana","password":"{PASSWORD}"}}"#);
    let up = request(&addr, "POST", "/api/auth/sign-up", Some(&body), None, &[]).await;
    assert_eq!(up.status, 200, "{}", up.body);
    let cookie = up.header("set-cookie").unwrap().to_lowercase();
    for flag in ["httponly", "samesite=lax", "path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("secure"), "plain HTTP: not Secure");
    assert_eq!(json(&up.body)["email"], "ana@example.test");
    let again = request(&addr, "POST", "/api/auth/sign-up", Some(&body), None, &[]).await;
    assert_eq!(again.status, 400, "the email is taken");
    for bad in [
        r#"{"email":"not-an-email","name":"A","password":"long enough"}"#,
        r#"{"email":"b@example.test","name":"","password":"long enough"}"#,
        r#"{"email":"b@example.test","name":"B","password":"short"}"#,
        r#"{"email":"b@example.test","name":"B","password":"long enough","admin":true}"#,
    ] {
        let response = request(&addr, "POST", "/api/auth/sign-up", Some(bad), None, &[]).await;
        assert_eq!(response.status, 400, "{bad}: {}", response.body);
    }
    // Behind HTTPS (a trusted proxy says so) the cookie is Secure and HSTS is sent.
    let body = format!(r#"{{"email":"ana@example.test","password":"{PASSWORD}"}}"#);
    let secure = request(
        &addr,
        "POST",
        "/api/auth/sign-in",
        Some(&body),
        None,
        &[("X-Forwarded-Proto", "https")],
    )
    .await;
    assert_eq!(secure.status, 200);
    assert!(secure.header("set-cookie").unwrap().contains("Secure"));
    assert!(secure.header("strict-transport-security").is_some());

    // Brute force: five wrong passwords, then even the right one waits.
    let wrong = r#"{"email":"ana@example.test","password":"wrong password"}"#;
    for _ in 0..5 {
        let response = request(&addr, "POST", "/api/auth/sign-in", Some(wrong), None, &[]).await;
        assert_eq!(response.status, 401);
    }
    let throttled = request(&addr, "POST", "/api/auth/sign-in", Some(&body), None, &[]).await;
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    assert!(throttled.header("retry-after").is_some());
    // From another client address too: the account is throttled.
    let elsewhere = request(
        &addr,
        "POST",
        "/api/auth/sign-in",
        Some(&body),
        None,
        &[("X-Real-IP", "203.0.113.9")],
    )
    .await;
    assert_eq!(elsewhere.status, 429);

    // The HTML forms: redirects, never to another site.
    let form = format!("email=ben%40example.test&name=Ben&password={PASSWORD}&next=%2F%2Fevil.example");
    let up = request(
        &addr,
        "POST",
        "/api/auth/sign-up",
        Some(&form.replace(' ', "+")),
        None,
        &[("Content-Type", "application/x-www-form-urlencoded")],
    )
    .await;
    assert_eq!(up.status, 303, "{}", up.body);
    assert_eq!(up.header("location"), Some("/"));
    let bad = "email=ben%40example.test&password=nope+nope+nope&next=%2Fd%2Fabc";
    let back = request(
        &addr,
        "POST",
        "/api/auth/sign-in",
        Some(bad),
        None,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Real-IP", "198.51.100.7"),
        ],
    )
    .await;
    assert_eq!(back.status, 303);
    assert_eq!(back.header("location"), Some("/sign-in?error=invalid&next=/d/abc"));
    // A share link, signed out: sign in first, then come back.
    let link = request(&addr, "GET", "/s/abc123", None, None, &[]).await;
    assert_eq!(link.status, 303);
    assert_eq!(link.header("location"), Some("/sign-in?next=/s/abc123"));

    // Security headers on pages and API answers; the page's CSP has the
    // nonce of its inline scripts.
    let page = request(&addr, "GET", "/", None, None, &[]).await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap().to_owned();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        !csp.contains("'unsafe-inline'") && !csp.contains("'unsafe-eval'"),
        "{csp}"
    );
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap();
    assert!(
        page.body.contains(&format!("nonce=\"{nonce}\"")),
        "scripts carry the nonce"
    );
    for (header, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
    ] {
        assert_eq!(page.header(header), Some(value), "{header}");
    }
    let api = request(&addr, "GET", "/api/auth/me", None, None, &[]).await;
    assert_eq!(api.status, 401);
    assert!(api
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    server.shutdown().await;
}
