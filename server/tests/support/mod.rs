//! Test support: a real server on port 0 with a throwaway database, and a
//! WebSocket client that drives the shared `ClientState` like the browser.
#![allow(dead_code)]

pub mod cluster;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use collab::{serve, Cli, Config, Server};
use futures_util::{SinkExt, StreamExt};
use leptos::prelude::LeptosOptions;
use shared::api::UserView;
use shared::protocol::{ClientMessage, ServerMessage};
use shared::{ClientId, ClientState, Revision, SectionPolicy, Update};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let mut bytes = [0u8; 8];
        getrandom::getrandom(&mut bytes).unwrap();
        let dir = std::env::temp_dir().join(format!("collab-{name}-{}", u64::from_le_bytes(bytes)));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.0.join("collab.db").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts a server on `addr` (port 0 for any) with this database.
pub async fn start(database_url: &str, addr: SocketAddr, tweak: impl FnOnce(&mut Config)) -> Server {
    // RUST_LOG=collab=debug shows the server's logs in a failing test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let options = LeptosOptions::builder()
        .output_name("collab")
        .site_root("target/site")
        .build();
    let mut config = Config::resolve(
        Cli {
            database_url: Some(database_url.to_owned()),
            addr: Some(addr),
            ..Cli::default()
        },
        addr,
    )
    .unwrap();
    tweak(&mut config);
    serve(config, options).await.unwrap()
}

pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A signed-in account: its user and its session cookie (`name=value`).
#[derive(Clone, Debug)]
pub struct Account {
    pub user: UserView,
    pub cookie: String,
}

/// Signs up `name` (email `{name}@example.test`, a fixed password).
pub async fn sign_up(addr: &str, name: &str) -> Account {
    let body = serde_json::json!({
        "email": format!("{name}@example.test"),
        "name": name,
        "password": PASSWORD,
    })
    .to_string();
    let response = request(addr, "POST", "/api/auth/sign-up", Some(&body), None, &[]).await;
    assert_eq!(response.status, 200, "sign-up of {name}: {}", response.body);
    signed_in(&response)
}

/// Signs in again (a second session of the same account).
pub async fn sign_in(addr: &str, email: &str) -> Account {
    let body = serde_json::json!({ "email": email, "password": PASSWORD }).to_string();
    let response = request(addr, "POST", "/api/auth/sign-in", Some(&body), None, &[]).await;
    assert_eq!(response.status, 200, "sign-in of {email}: {}", response.body);
    signed_in(&response)
}

/// The account a successful sign-up or sign-in answered with, and its
/// session cookie.
fn signed_in(response: &Response) -> Account {
    let cookie = response
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    Account {
        user: serde_json::from_str(&response.body).unwrap(),
        cookie,
    }
}

/// Creates a document owned by `owner` with `text`, directly (no HTTP).
pub async fn create_owned(server: &Server, owner: &Account, text: &str) -> shared::api::DocumentSummary {
    server
        .documents()
        .create(
            &owner.user,
            shared::api::NewDocument {
                text: Some(text.to_owned()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

/// The password test accounts get.
pub const PASSWORD: &str = "correct horse battery";

/// Opens a WebSocket to the server (`/ws`) as `account`.
pub async fn connect(addr: SocketAddr, account: &Account) -> Socket {
    connect_to(&addr.to_string(), "/ws", Some(&account.cookie), None)
        .await
        .unwrap_or_else(|status| panic!("WebSocket refused with {status}"))
}

/// Opens a WebSocket at `path` with an optional cookie and `Origin`;
/// `Err(status)` when the handshake is refused.
pub async fn connect_to(addr: &str, path: &str, cookie: Option<&str>, origin: Option<&str>) -> Result<Socket, u16> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(cookie) = cookie {
        request.headers_mut().insert("cookie", cookie.parse().unwrap());
    }
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(error) => panic!("WebSocket to {addr}{path}: {error}"),
    }
}

/// The code a socket is closed with (waiting at most `wait`), skipping
/// other frames; `None` if it stays open or drops without a close frame.
pub async fn close_code(socket: &mut Socket, wait: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

pub async fn send(socket: &mut Socket, message: &ClientMessage) {
    socket
        .send(Message::text(serde_json::to_string(message).unwrap()))
        .await
        .unwrap();
}

/// The next protocol message, or `None` when the socket closed or `wait` passed.
pub async fn next(socket: &mut Socket, wait: Duration) -> Option<ServerMessage> {
    loop {
        match tokio::time::timeout(wait, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(text.as_str()).unwrap()),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// The next message that is not a presence list.
pub async fn next_skipping_presence(socket: &mut Socket, wait: Duration) -> Option<ServerMessage> {
    loop {
        match next(socket, wait).await {
            Some(ServerMessage::Presence { .. }) => continue,
            other => return other,
        }
    }
}

/// A simulated browser: the shared client state machine over a WebSocket.
pub struct Browser {
    pub state: ClientState,
    pub socket: Option<Socket>,
    pub document: String,
    pub account: Account,
}

impl Browser {
    /// Connects and joins as `account`, loading the text from the server.
    pub async fn open(addr: SocketAddr, document: &str, id: u64, account: &Account) -> Browser {
        let mut browser = Browser {
            state: ClientState::new(
                ClientId::new(id).unwrap(),
                SectionPolicy::Line,
                Revision(0),
                String::new(),
            ),
            socket: None,
            document: document.to_owned(),
            account: account.clone(),
        };
        browser.state.disconnect();
        browser.connect(addr, None).await;
        browser
    }

    /// (Re)connects: joins from our revision (or from scratch) and resends
    /// the change in flight.
    pub async fn connect(&mut self, addr: SocketAddr, revision: Option<Revision>) {
        let mut socket = connect(addr, &self.account).await;
        let join = ClientMessage::Join {
            document: self.document.clone(),
            client: self.state.client(),
            revision,
            name: None,
        };
        send(&mut socket, &join).await;
        match next_skipping_presence(&mut socket, Duration::from_secs(10)).await {
            Some(ServerMessage::Joined { revision, text, .. }) => {
                if let Some(text) = text {
                    self.state.resync(revision, text).unwrap();
                }
            }
            other => panic!("expected joined, got {other:?}"),
        }
        if let Some(change) = self.state.reconnect() {
            send(&mut socket, &ClientMessage::Submit { change }).await;
        }
        self.socket = Some(socket);
        self.pump().await;
    }

    /// Sends what the state machine wants sent.
    pub async fn pump(&mut self) {
        while let Some(change) = self.state.poll_send() {
            if let Some(socket) = &mut self.socket {
                send(socket, &ClientMessage::Submit { change }).await;
            }
        }
    }

    /// Handles one server message; panics on a prediction mismatch.
    pub fn handle(&mut self, message: ServerMessage) -> Update {
        let update = match message {
            ServerMessage::Accepted { change } => self.state.receive(&change),
            ServerMessage::Verdict { seq, verdict } => self.state.receive_verdict(seq, &verdict),
            ServerMessage::Joined { .. } | ServerMessage::Presence { .. } | ServerMessage::Role { .. } => {
                Ok(Update::default())
            }
            ServerMessage::Error { code, message, .. } => panic!("server error {code:?}: {message}"),
        };
        update.unwrap_or_else(|e| panic!("client {}: {e}", self.state.client()))
    }

    /// Receives for at most `wait`; false when the socket closed.
    pub async fn receive_for(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return true;
            }
            let Some(socket) = &mut self.socket else { return false };
            match tokio::time::timeout(left, socket.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let message: ServerMessage = serde_json::from_str(text.as_str()).unwrap();
                    self.handle(message);
                    self.pump().await;
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                    self.socket = None;
                    self.state.disconnect();
                    return false;
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Receives until nothing is in flight or buffered and the revision
    /// reaches `revision` (if given).
    pub async fn settle(&mut self, revision: Option<Revision>) {
        for _ in 0..400 {
            let done = self.state.in_flight().is_none()
                && !self.state.has_unsynced()
                && revision.is_none_or(|r| self.state.revision() >= r);
            if done {
                return;
            }
            if !self.receive_for(Duration::from_millis(25)).await {
                panic!("connection closed while settling");
            }
        }
        panic!(
            "client {} did not settle: revision {}, in flight {:?}",
            self.state.client(),
            self.state.revision(),
            self.state.in_flight()
        );
    }
}

/// An HTTP response: status, head and body.
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A minimal HTTP/1.1 request with an optional cookie and more headers.
/// A JSON body is sent as `application/json` unless a header says otherwise.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
) -> Response {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let mut extra = String::new();
    if let Some(cookie) = cookie {
        extra.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        extra.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        extra.push_str(&format!("{k}: {v}\r\n"));
    }
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Response {
        status,
        head: head.to_owned(),
        body,
    }
}

/// A request without a session; returns the status and the body.
pub async fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let response = request(addr, method, path, body, None, &[]).await;
    (response.status, response.body)
}

/// A request as `account`; returns the status and the body.
pub async fn http_as(account: &Account, addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let response = request(addr, method, path, body, Some(&account.cookie), &[]).await;
    (response.status, response.body)
}

/// `GET path` at `addr`.
pub async fn http_get(addr: &str, path: &str) -> (u16, String) {
    http(addr, "GET", path, None).await
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Signs up `count` accounts named `{prefix}{i}` and gives each `role` on
/// document `id` (owned by `owner`).
pub async fn members(
    server: &Server,
    owner: &Account,
    id: &str,
    prefix: &str,
    count: usize,
    role: shared::api::Role,
) -> Vec<Account> {
    let mut accounts = Vec::new();
    for i in 0..count {
        let account = sign_up(&server.addr.to_string(), &format!("{prefix}{i}")).await;
        server
            .documents()
            .add_member(
                &owner.user,
                id,
                shared::api::AddMember {
                    email: account.user.email.clone(),
                    role,
                },
            )
            .await
            .unwrap();
        accounts.push(account);
    }
    accounts
}
